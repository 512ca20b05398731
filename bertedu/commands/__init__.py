"""The ``bertedu`` command line: one module per command, listed in ``COMMANDS``.

Each command module has ``configure(parser)`` (its arguments) and ``run(args) -> int``
(its exit status). Modules are imported only when their command runs, so
``bertedu --help`` stays instant. Library modules never import argparse: the commands
call the library, never the other way round.
"""
from __future__ import annotations

import argparse

# name -> (module, one-line help), in the order ``bertedu --help`` lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "doctor": ("bertedu.commands.doctor", "what is installed, which device, where data and checkpoints are"),
    "data": ("bertedu.commands.data", "fetch or verify the IMDb dataset and print split counts"),
    "course": ("bertedu.commands.course", "run every chapter notebook headless, in order"),
    "pretrain": ("bertedu.commands.pretrain", "pre-train a small BERT with MLM + NSP on IMDb text"),
    "finetune": ("bertedu.commands.finetune", "fine-tune a BERT checkpoint for IMDb sentiment"),
    "predict": ("bertedu.commands.predict", "classify texts with a fine-tuned model"),
    "attention": ("bertedu.commands.attention", "write an offline HTML view of every layer's and head's attention"),
    "bias": ("bertedu.commands.bias", "audit a fine-tuned sentiment model for demographic bias"),
    "student-edition": ("bertedu.commands.student_edition", "write the notebooks without their solutions"),
}


def add_mode_flags(parser: argparse.ArgumentParser) -> None:
    """``--quick`` / ``--full`` (``args.quick``: True, False, or None for ``BERTEDU_QUICK``)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="quick", action="store_true", default=None,
                       help="small settings that finish in minutes on a CPU (default)")
    group.add_argument("--full", dest="quick", action="store_false",
                       help="the real experiment: meant for a GPU")

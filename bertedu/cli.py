"""The ``bertedu`` command: one sub-command per job, each living next to the code it runs.

A sub-command is a module with ``configure_<name>(parser)`` and ``run_<name>(args) -> int``.
Modules are imported only when their command runs, so ``bertedu --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("bertedu.data", "fetch or verify the IMDb dataset and print split counts"),
    "course": ("bertedu.course", "run every chapter notebook headless, in order"),
    "doctor": ("bertedu.doctor", "what is installed, which device, where data and checkpoints are"),
    "pretrain": ("bertedu.pretraining", "pre-train a small BERT with MLM + NSP on IMDb text"),
    "finetune": ("bertedu.finetuning", "fine-tune a BERT checkpoint for IMDb sentiment"),
    "predict": ("bertedu.finetuning", "classify texts with a fine-tuned model"),
    "bias": ("bertedu.commands.bias", "audit a fine-tuned sentiment model for demographic bias"),
}


def add_mode_flags(parser: argparse.ArgumentParser) -> None:
    """``--quick`` / ``--full``: the same switch as ``BERTEDU_QUICK``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", dest="quick", action="store_true", default=None,
                       help="small settings that finish in minutes on a CPU (default)")
    group.add_argument("--full", dest="quick", action="store_false",
                       help="the real experiment: meant for a GPU")


def apply_mode_flags(args: argparse.Namespace) -> None:
    from bertedu.settings import set_mode

    if getattr(args, "quick", None) is not None:
        set_mode(args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bertedu", description="Build BERT from scratch: the course's command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        build_parser().print_help()
        return 0
    if argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints "invalid choice" and exits 2
    name, rest = argv[0], argv[1:]
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as error:
        if error.name != COMMANDS[name][0]:
            raise  # a missing dependency: let the real import error show
        print(f"bertedu {name}: this release does not include {COMMANDS[name][0]} yet "
              "(its chapter is still being written).", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"bertedu {name}", description=COMMANDS[name][1])
    getattr(module, f"configure_{name}")(parser)
    args = parser.parse_args(rest)
    apply_mode_flags(args)
    try:
        return int(getattr(module, f"run_{name}")(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        # Our errors say what to do; a traceback would only hide that sentence.
        print(f"bertedu {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``bertedu pretrain``: pre-train a small BERT with MLM + NSP on IMDb text (chapter 4)."""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from bertedu.commands import add_mode_flags
from bertedu.errors import UserError
from bertedu.paths import checkpoints_dir
from bertedu.pretraining import (
    PRESETS,
    PRETRAINED_NAME,
    RUN_NAME,
    SHIPPED_PRESET,
    pretrain,
    pretraining_preset,
    pretraining_settings,
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_mode_flags(parser)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"where the pre-trained model goes (default: data/checkpoints/{PRETRAINED_NAME})")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help=f"resumable training checkpoints (default: data/checkpoints/{RUN_NAME}-<mode>)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming an earlier run")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"named settings instead of the mode's: {', '.join(PRESETS)} "
                             f"({SHIPPED_PRESET}: the model that ships with the package)")
    parser.add_argument("--max-steps", type=int, default=None, help="override the mode's number of optimizer steps")
    parser.add_argument("--whole-word", action="store_true", help="mask whole words instead of word pieces")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")


def run(args: argparse.Namespace) -> int:
    from bertedu.settings import describe_run, mode_name

    settings = pretraining_preset(args.preset) if args.preset else pretraining_settings(args.quick)
    if args.max_steps is not None:
        if args.max_steps < 1:
            raise UserError(f"--max-steps must be at least 1; got {args.max_steps}.")
        settings.training = replace(settings.training, max_steps=args.max_steps)
    settings.whole_word = args.whole_word
    output = args.output or checkpoints_dir(PRETRAINED_NAME)
    run_dir = args.run_dir or checkpoints_dir(f"{RUN_NAME}-{args.preset or mode_name(args.quick)}")
    rank = int(os.environ.get("RANK", "0"))
    if rank == 0:
        describe_run(quick=args.quick)
        print(f"Checkpoints (resumable): {run_dir}\nModel: {output}")
    run = pretrain(settings, output_dir=output, checkpoint_dir=run_dir, fresh=args.fresh, progress=not args.no_progress)
    if rank == 0:
        first, last = run.history.evals[0], run.history.evals[-1]
        print(f"step {first['step']:>6}: " + _metrics_line(first))
        print(f"step {last['step']:>6}: " + _metrics_line(last))
        print(f"Saved the pre-trained model to {output}")
    return 0


def _metrics_line(row: dict[str, float]) -> str:
    return (f"MLM loss {row['mlm_loss']:.3f}, MLM accuracy {row['mlm_accuracy']:.1%}, "
            f"NSP loss {row['nsp_loss']:.3f}, NSP accuracy {row['nsp_accuracy']:.1%}")

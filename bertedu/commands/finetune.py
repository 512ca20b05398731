"""``bertedu finetune``: fine-tune a BERT checkpoint for IMDb sentiment (chapter 5).

A thin layer over ``bertedu.finetuning.finetune_checkpoint``: arguments in, a resumable
run folder, the classifier saved where ``bertedu predict`` looks for it.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from bertedu.checkpoint import checkpoint_folder
from bertedu.commands import add_mode_flags
from bertedu.errors import UserError
from bertedu.finetuning import (
    FRESH_ATTENTION_NEEDS_FULL,
    MODEL_NAME,
    RUN_NAME,
    finetune_checkpoint,
    finetune_settings,
    resolve_checkpoint,
    small_bert_settings,
)
from bertedu.model import BertConfig
from bertedu.parameter_efficient import LEARNING_RATES, method_config
from bertedu.paths import checkpoints_dir
from bertedu.tokenization import find_vocab
from bertedu.training import prepare_run_dir


def configure(parser: argparse.ArgumentParser) -> None:
    add_mode_flags(parser)
    parser.add_argument("--checkpoint", default="default",
                        help="BERT to start from: 'default' (embedded all-MiniLM-L6-v2), 'small' (chapter 4's "
                             "model), 'shipped' (the small BERT shipped with the package) or a checkpoint "
                             "folder (config.json, weights, vocab.txt)")
    parser.add_argument("--fresh-attention", action="store_true",
                        help="before training, draw the encoder's attention again and scale its embedding tables "
                             "to BERT's initial size (chapter 5a, point 1c: what brings chapter 4's quick run level "
                             "with random weights); with 'small', that recipe's own epochs and rate")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"where the fine-tuned model goes (default: data/checkpoints/{MODEL_NAME})")
    parser.add_argument("--epochs", type=int, default=None, help="override the mode's number of epochs")
    parser.add_argument("--n-train", type=int, default=None, help="override the mode's number of training reviews")
    parser.add_argument("--learning-rate", type=float, default=None, help="override the mode's peak learning rate")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="resumable training checkpoints, one per epoch (default: data/checkpoints/"
                             f"{RUN_NAME}-<mode>)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming an earlier run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--method", choices=("full", "lora", "adapter", "bitfit"), default="full",  # chapter 5b
                        help="what to train: every weight, LoRA factors, bottleneck adapters or the biases")
    parser.add_argument("--rank", type=int, default=None, help="LoRA's rank r (default 8) or the adapter's "
                                                                "bottleneck size (default 16)")


def run(args: argparse.Namespace) -> int:
    from bertedu.settings import describe_run, mode_name

    if args.fresh_attention and args.method != "full":  # before anything is read or written
        raise UserError(FRESH_ATTENTION_NEEDS_FULL.format(option="--fresh-attention", full="--method full",
                                                          method=f"--method {args.method}"))
    checkpoint = resolve_checkpoint(args.checkpoint, progress=not args.no_progress)
    settings = finetune_settings(args.quick)
    if args.checkpoint in ("small", "shipped"):  # each with its own validation-chosen epochs and rate
        kind = "shipped" if args.checkpoint == "shipped" else "rescaled" if args.fresh_attention else "pretrained"
        settings = small_bert_settings(settings, BertConfig.from_pretrained(checkpoint).max_position_embeddings,
                                       weights=kind)
    for name, value in (("epochs", args.epochs), ("n_train", args.n_train), ("learning_rate", args.learning_rate)):
        if value is not None:
            if value <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive; got {value}.")
            settings = replace(settings, **{name: value})
    peft = method_config(args.method, args.rank, args.checkpoint, checkpoint)  # checked before anything is written
    if args.method != "full" and args.learning_rate is None:
        settings = replace(settings, learning_rate=LEARNING_RATES[args.method])
    suffix = "" if args.method == "full" else f"-{args.method}"
    output = args.output or checkpoints_dir(MODEL_NAME + suffix)
    run_dir = args.run_dir or checkpoints_dir(f"{RUN_NAME}-{mode_name(args.quick)}{suffix}")
    for check in (checkpoint_folder, BertConfig.from_pretrained, find_vocab):  # before the run folder is touched
        check(checkpoint)
    # only what differs from a plain full fine-tune, so that full runs resume as before
    method = {"method": args.method, "rank": peft.rank} if args.method != "full" else {}
    start = {"fresh_attention": True} if args.fresh_attention else {}  # a plain start's run folder is not resumed with it
    prepare_run_dir(run_dir, {"checkpoint": str(checkpoint.resolve()), **asdict(settings), **method, **start},
                    args.fresh)
    describe_run(quick=args.quick)
    started = time.perf_counter()
    result = finetune_checkpoint(checkpoint, settings, output_dir=output, checkpoint_dir=run_dir,
                                 progress=not args.no_progress, peft=None if args.method == "full" else peft,
                                 fresh_attention=args.fresh_attention)
    minutes = (time.perf_counter() - started) / 60
    print(f"Best validation accuracy {result.history.best['accuracy']:.1%} (step {int(result.history.best['step'])}).")
    print(f"Test: {settings.n_test} reviews, {minutes:.1f} minutes in all\n{result.scores.report()}")
    print(f"Saved the fine-tuned model to {output}\nTry it: bertedu predict --model {output} \"What a film!\"")
    return 0

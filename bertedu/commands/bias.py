"""``bertedu bias --model DIR [--json]``: the chapter-7 bias audit of a fine-tuned sentiment model.

Prints one row per attribute: the template pairs shipped with the package (gender by
names, gender by nouns, nationality) and, unless ``--reviews 0``, IMDb test reviews with
their gendered words swapped. See ``bertedu.bias`` for what each column means.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_REVIEWS = 1_000


def configure(parser: argparse.ArgumentParser) -> None:
    from bertedu.finetuning import MODEL_NAME

    parser.description = (
        "Audit a fine-tuned sentiment model: does P(positive) move when only a demographic term changes? "
        "Matched template pairs per attribute and gender-swapped IMDb test reviews; mean paired difference "
        "with a 95%% confidence interval, paired t-test and Wilcoxon p-values, mean absolute difference and "
        "label flips."
    )
    parser.add_argument("--model", "-m", type=Path, default=None,
                        help=f"a fine-tuned model folder (default: data/checkpoints/{MODEL_NAME})")
    parser.add_argument("--json", action="store_true", help="print the audit as one JSON object")
    parser.add_argument("--reviews", type=int, default=DEFAULT_REVIEWS,
                        help=f"IMDb test reviews to swap (label-balanced, seed 0; default {DEFAULT_REVIEWS}; "
                             "0: templates only)")
    parser.add_argument("--attribute", action="append", default=None,
                        help="audit only this template attribute (repeatable); default: all of them")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")


def run(args: argparse.Namespace) -> int:
    from bertedu.bias import bias_audit, load_templates
    from bertedu.errors import UserError
    from bertedu.finetuning import MODEL_NAME
    from bertedu.paths import checkpoints_dir
    from bertedu.sentiment import SentimentClassifier

    folder = args.model or checkpoints_dir(MODEL_NAME)
    if args.reviews < 0:
        raise UserError(f"--reviews must be 0 or more; got {args.reviews}.")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1; got {args.batch_size}.")
    known = list(load_templates()["attributes"])
    for name in args.attribute or []:
        if name not in known:
            raise UserError(f"No template attribute {name!r}; there are: {', '.join(repr(k) for k in known)}.")
    if not Path(folder).is_dir():
        raise UserError(f"No model folder {folder}: train one with `bertedu finetune`, or pass --model DIR.")
    classifier = SentimentClassifier.from_pretrained(folder)  # UserError when it has no classifier head
    reviews = None
    if args.reviews:
        from bertedu.data import load_imdb

        reviews = load_imdb("test", n=args.reviews, seed=0)
    audit = bias_audit(classifier, reviews, attributes=args.attribute, batch_size=args.batch_size)
    if args.json:
        print(json.dumps({"model": str(folder), **audit.to_dict()}))
    else:
        print(f"Bias audit of {folder}")
        print(audit.table())
    return 0

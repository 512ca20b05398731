"""What the small-BERT benchmarks share: the weights of each kind, their tokenizer and config.

A kind of weights is a key of ``bertedu.finetuning.SMALL_BERT_SCHEDULES``: "random" (BERT's
initialisation), "pretrained" (chapter 4's quick run), "new-attention" (that run with its
attention re-initialised: ``reinitialize_attention``), "rescaled" (new attention, and the
embedding tables scaled to BERT's initial size: ``rescale_embeddings``) or "shipped" (the
shipped small BERT).
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertedu.finetuning import SMALL_BERT_SCHEDULES

KINDS = tuple(SMALL_BERT_SCHEDULES)  # random, pretrained, new-attention, rescaled, shipped: every script's arms


@dataclass
class SmallBerts:
    folders: dict[str, Path | None]  # kind -> saved encoder; None: random weights
    tokenizer: Any                   # the one vocabulary every kind shares
    config: Any                      # BertConfig, the same for every kind

    def classifier(self, weights: str):
        """A new two-class classifier on ``weights``; seed first (``seed_everything``)."""
        from bertedu.finetuning import small_bert_of_kind

        return small_bert_of_kind(weights, self.config, self.folders[weights])


def load_small_berts() -> SmallBerts:
    """Chapter 4's quick run and the shipped model, checked to share config.json and vocab.txt."""
    from bertedu.model import BertConfig
    from bertedu.pretraining import pretrained_small_bert, shipped_small_bert, small_bert_mismatch
    from bertedu.tokenization import load_fast_tokenizer

    pretrained, shipped = pretrained_small_bert(), shipped_small_bert()
    problem = small_bert_mismatch(shipped, pretrained)
    if problem:
        raise SystemExit(problem)
    folders = {"random": None, "pretrained": pretrained, "new-attention": pretrained, "rescaled": pretrained,
               "shipped": shipped}
    return SmallBerts(folders, load_fast_tokenizer(shipped), BertConfig.from_pretrained(shipped))


def subset_option(arguments: list[str], option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The comma-separated names after ``option`` in ``arguments`` (both removed from the list,
    so positional arguments stay), checked against ``allowed``; all of ``allowed`` without it."""
    if option not in arguments:
        return allowed
    at = arguments.index(option)
    chosen = tuple(arguments[at + 1].split(",")) if at + 1 < len(arguments) else ()
    del arguments[at:at + 2]
    if not chosen or not set(chosen) <= set(allowed):
        raise SystemExit(f"{option} takes a comma-separated subset of {','.join(allowed)}")
    return chosen


def paired_difference(tests: list[float], reference: list[float]) -> tuple[float, float, float, float]:
    """Seed by seed, ``tests`` minus ``reference`` (accuracies, 0-1) in points: the mean, its standard
    error (nan for one seed), the smallest and the largest difference."""
    gains = [100 * (t - r) for t, r in zip(tests, reference)]
    se = statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 else float("nan")
    return statistics.mean(gains), se, min(gains), max(gains)


def summary_lines(tests: dict[str, list[float]], pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Each arm's mean and standard deviation of test accuracy over the seeds, then for each
    ``(arm, reference)`` pair the paired difference of their accuracies, seed by seed, in points:
    its mean, standard error, smallest and largest. ``tests``: arm -> accuracy per seed (0-1)."""
    width = max(len(name) for name in tests)
    lines = [f"{name:{width}s} test accuracy: mean {statistics.mean(accuracies):.1%}, "
             f"standard deviation {100 * statistics.stdev(accuracies):.1f} points" for name, accuracies in tests.items()]
    for name, reference in pairs:
        mean, se, smallest, largest = paired_difference(tests[name], tests[reference])
        lines.append(f"paired difference {name} - {reference}: mean {mean:+.1f} points, "
                     f"standard error {se:.1f}, smallest {smallest:+.1f}, largest {largest:+.1f}")
    return lines

"""Chapter 5 exercises: head + tail truncation, macro F1, mean pooling.

    from bertedu.exercises import ch05
    ch05.check_truncate_head_tail(my_truncate)  # (pieces, body, head_tokens) -> list[int]
    ch05.check_macro_f1(my_macro_f1)            # (labels, predictions) -> float
    ch05.check_mean_pool(my_mean_pool)          # (last_hidden_state (B, T, H), attention_mask (B, T)) -> (B, H)
    ch05.solution("macro_f1")
"""
from __future__ import annotations

from typing import Callable

import torch

from bertedu.exercises import (
    ExerciseError,
    call_learner,
    checker,
    compare_tensors,
    fail,
    print_solution,
)

# -- reference solutions ------------------------------------------------------------------


def truncate_head_tail(pieces: list[int], body: int, head_tokens: int) -> list[int]:
    """Keep the first ``head_tokens`` and the last ``body - head_tokens`` items of a too-long list."""
    if len(pieces) <= body:
        return list(pieces)
    tail_tokens = body - head_tokens
    return list(pieces[:head_tokens]) + (list(pieces[len(pieces) - tail_tokens:]) if tail_tokens > 0 else [])


def macro_f1(labels: list[int], predictions: list[int]) -> float:
    """The mean over classes of F1 = 2PR / (P + R); a class never predicted has precision 0."""
    f1s = []
    for c in sorted(set(labels) | set(predictions)):
        tp = sum(1 for y, p in zip(labels, predictions) if y == c and p == c)
        predicted = sum(1 for p in predictions if p == c)
        actual = sum(1 for y in labels if y == c)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(f1s) / len(f1s)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token vectors over the real tokens only: ``(B, T, H), (B, T) -> (B, H)``."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)  # (B, T, 1)
    return (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


SOLUTIONS = {"truncate_head_tail": truncate_head_tail, "macro_f1": macro_f1, "mean_pool": mean_pool}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------


TRUNCATION_CASES = [(20, 8, 3), (20, 8, 0), (20, 8, 8), (8, 8, 3), (5, 8, 3), (1000, 254, 64)]


@checker("truncate_head_tail", n_cases=len(TRUNCATION_CASES))
def check_truncate_head_tail(function: Callable) -> None:
    """Compare ``function(pieces, body, head_tokens)`` with the reference on several cases."""
    for n, body, head in TRUNCATION_CASES:
        pieces = list(range(100, 100 + n))
        what = f"a list of {n} pieces, body={body}, head_tokens={head}"
        got = call_learner(function, what, list(pieces), body, head)
        expected = truncate_head_tail(pieces, body, head)
        if got is not None and not isinstance(got, list):
            got = list(got)
        if got == expected:
            continue
        hint = ""
        if got == pieces[:body]:
            hint = "that is head-only truncation: keep the last body - head_tokens pieces too."
        elif head == body and got == pieces[:head] + pieces:
            hint = "with no tail to keep (head_tokens = body), pieces[-0:] is the whole list, not an empty one."
        elif isinstance(got, list) and n > body and len(got) != body:
            hint = f"a truncated list must hold exactly body = {body} pieces; yours has {len(got)}."
        elif n <= body and got != pieces:
            hint = "a list that already fits must be returned unchanged."
        fail(f"On {what}: got {got if len(str(got)) < 120 else str(got)[:120] + '...'}, expected "
             f"{expected if len(str(expected)) < 120 else str(expected)[:120] + '...'}."
             + (f"\n  Hint: {hint}" if hint else ""))


def _macro_f1_cases() -> dict[str, tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (200,), generator=g)
    noisy = torch.where(torch.rand(200, generator=g) < 0.8, labels, 1 - labels)
    skewed = torch.where(torch.rand(200, generator=g) < 0.6, torch.ones_like(labels), labels)
    cases = {
        "80% correct predictions": (labels.tolist(), noisy.tolist()),
        "predictions biased towards class 1": (labels.tolist(), skewed.tolist()),
        "a classifier that always says 1": ([0, 0, 1, 1], [1, 1, 1, 1]),
    }
    return cases


@checker("macro_f1", n_cases=3)
def check_macro_f1(function: Callable) -> None:
    """Compare ``function(labels, predictions)`` with macro F1 on balanced, skewed and degenerate cases."""
    for what, (y, p) in _macro_f1_cases().items():
        got = call_learner(function, what, list(y), list(p))
        expected = macro_f1(y, p)
        if isinstance(got, (int, float)) and abs(float(got) - expected) < 1e-9:
            continue
        accuracy = sum(a == b for a, b in zip(y, p)) / len(y)
        hints = {round(accuracy, 9): "that is the accuracy (= micro F1), not the mean of per-class F1s.",
                 round(_f1_of(y, p, 1), 9): "that is the F1 of class 1 only; average over both classes."}
        hint = hints.get(round(float(got), 9), "") if isinstance(got, (int, float)) else "return a float."
        fail(f"On {what}: got {got!r}, expected {expected:.6f}." + (f"\n  Hint: {hint}" if hint else ""))


def _f1_of(labels: list[int], predictions: list[int], c: int) -> float:
    tp = sum(1 for y, p in zip(labels, predictions) if y == c and p == c)
    predicted, actual = predictions.count(c), labels.count(c)
    precision, recall = (tp / predicted if predicted else 0.0), (tp / actual if actual else 0.0)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@checker("mean_pool", n_cases=1)
def check_mean_pool(function: Callable) -> None:
    """Compare ``function(last_hidden_state, attention_mask)`` with masked mean pooling."""
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 6, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]])
    got = call_learner(function, "last_hidden_state (3, 6, 8) with padding", hidden.clone(), mask.clone())
    expected = mean_pool(hidden, mask)
    try:
        compare_tensors(got, expected, "mean_pool output (3, 8)")
    except ExerciseError as error:
        hint = ""
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            if torch.allclose(got, hidden.mean(dim=1), atol=1e-5):
                hint = "you averaged over padding positions too; multiply by the mask and divide by its sum."
            elif torch.allclose(got, hidden[:, 0], atol=1e-5):
                hint = "that is the [CLS] vector; average over all real tokens instead."
        raise ExerciseError(str(error) + (f"\n  Hint: {hint}" if hint else "")) from None

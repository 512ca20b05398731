"""Chapter 5a exercises: the mean pairwise cosine in one pass; the gradient after rescaling.

    from bertedu.exercises import ch05a
    ch05a.check_mean_pairwise_cosine(my_cosine)          # vectors (N, H) -> float
    ch05a.check_gradient_growth(my_prediction, model, batch)  # predict, then run
    ch05a.solution("mean_pairwise_cosine")
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import nn

from bertedu.exercises import call_learner, check_prediction, checker, fail, print_solution

# -- reference solutions ------------------------------------------------------------------


def mean_pairwise_cosine(vectors: torch.Tensor) -> float:
    """The mean cosine similarity over the N(N - 1) ordered pairs of distinct rows of ``(N, H)``.

    With unit rows u_i and their mean m: sum_{i != j} u_i . u_j = |sum_i u_i|^2 - N = N^2 |m|^2 - N.
    """
    units = vectors / vectors.norm(dim=1, keepdim=True)  # (N, H)
    n = units.shape[0]
    return float((n * units.mean(dim=0).pow(2).sum() - 1) / (n - 1))


def word_gradient_growth(model: nn.Module, batch: dict[str, torch.Tensor]) -> float:
    """How many times larger the word table's gradient is after ``rescale_embeddings``, on one batch:
    ``|grad after| / |grad before|``, with dropout off so that both passes are the same."""
    from bertedu.finetuning import rescale_embeddings

    norms = []
    for rescale in (False, True):
        copy_ = copy.deepcopy(model).eval()
        if rescale:
            rescale_embeddings(copy_)
        copy_(**batch).loss.backward()
        norms.append(copy_.bert.embeddings.word_embeddings.weight.grad.norm())
    return float(norms[1] / norms[0])


SOLUTIONS = {"mean_pairwise_cosine": mean_pairwise_cosine}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------


def _cosine_cases() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(50, 16, generator=g, dtype=torch.float64)
    common = torch.randn(1, 16, generator=g, dtype=torch.float64)
    return {
        "50 random vectors (16 numbers each)": spread,
        "50 vectors leaning along one shared direction": spread * 0.3 + 2.0 * common,
        "two vectors of different lengths": torch.tensor([[3.0, 0.0], [1.0, 1.0]], dtype=torch.float64),
    }


def _brute_force(vectors: torch.Tensor) -> float:
    units = vectors / vectors.norm(dim=1, keepdim=True)
    cosines = units @ units.T  # (N, N)
    n = len(units)
    return float((cosines.sum() - cosines.diagonal().sum()) / (n * (n - 1)))


@checker("mean_pairwise_cosine", n_cases=3)
def check_mean_pairwise_cosine(function: Callable) -> None:
    """Compare ``function(vectors)`` with the mean over all pairs of distinct rows, computed pair by pair."""
    for what, vectors in _cosine_cases().items():
        got = call_learner(function, what, vectors.clone())
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        expected = _brute_force(vectors)
        if isinstance(got, (int, float)) and abs(float(got) - expected) < 1e-6:
            continue
        if not isinstance(got, (int, float)):
            fail(f"On {what}: return one number (a float); got {type(got).__name__}.")
        n = len(vectors)
        units = vectors / vectors.norm(dim=1, keepdim=True)
        raw_mean = vectors.mean(dim=0)
        hints = {
            round(float(units.mean(dim=0).pow(2).sum()), 6):
                "that is |m|^2, the mean over all N^2 pairs, the N pairs of a vector with itself (cosine 1) "
                "included: leave them out, (N |m|^2 - 1) / (N - 1).",
            round(float((n * raw_mean.pow(2).sum() - 1) / (n - 1)), 6):
                "the formula needs unit vectors: divide each row by its length first (a cosine ignores length).",
        }
        hint = hints.get(round(float(got), 6), "")
        fail(f"On {what}: got {float(got):.6f}, expected {expected:.6f}." + (f"\n  Hint: {hint}" if hint else ""))


@checker("gradient_growth", n_cases=1)
def check_gradient_growth(function: Callable[[], float], model: nn.Module, batch: dict[str, Any]) -> None:
    """Predict, then run: by what factor does ``rescale_embeddings`` grow the word table's gradient?"""
    check_prediction(function, lambda: word_gradient_growth(model, batch),
                     what="the word table's gradient after rescaling, over before", tolerance=0.15, unit="x",
                     why="the embedding LayerNorm ignores the tables' scale, so the loss is the same function of "
                         "c W as of W, and its gradient with respect to c W is the old one divided by c: "
                         "1 / factor, larger when the tables shrink.")

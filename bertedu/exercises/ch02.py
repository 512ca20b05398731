"""Chapter 2 exercises: scaled dot-product attention with a padding mask, and splitting heads.

    from bertedu.exercises import ch02
    ch02.check_attention(my_attention)      # (q, k, v, mask) -> (context, probs)
    ch02.check_split_heads(my_split_heads)  # (x (B, T, H), num_heads) -> (B, nh, T, hs)
    ch02.solution("attention")
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from bertedu.exercises import (
    ExerciseError,
    checker,
    compare_tensors,
    fail,
    print_solution,
)

# -- reference solutions ------------------------------------------------------------------


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k, v: ``(B, nh, T, hs)``; mask: ``(B, T)`` with 1 = real token, 0 = padding.

    Returns ``(context (B, nh, T, hs), probs (B, nh, T, T))``.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, T)
    if mask is not None:
        scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    probs = scores.softmax(dim=-1)
    return probs @ v, probs


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, T, H) -> (B, nh, T, hs)``: head h gets features ``h*hs .. (h+1)*hs - 1``."""
    B, T, H = x.shape
    return x.view(B, T, num_heads, H // num_heads).transpose(1, 2)


SOLUTIONS = {"attention": attention, "split_heads": split_heads}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------


def _cases() -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return [(q, k, v, None), (q, k, v, mask)]


@checker("attention", n_cases=2)
def check_attention(function: Callable) -> None:
    """Compare ``function(q, k, v, mask)`` with softmax(q k^T / sqrt(d_k) + mask) v."""
    for q, k, v, mask in _cases():
        where = "without a mask" if mask is None else "with padding in example 1 (mask [1, 1, 1, 0, 0])"
        try:
            got = function(q.clone(), k.clone(), v.clone(), None if mask is None else mask.clone())
        except NotImplementedError:
            raise
        except Exception as error:
            fail(f"Your function raised {type(error).__name__}: {error}\n  on q, k, v of shape "
                 f"(2, 3, 5, 4) {where}.")
        if not isinstance(got, tuple) or len(got) != 2:
            fail("Return a tuple (context, probs).")
        context, probs = got
        expected_context, expected_probs = attention(q, k, v, mask)
        try:
            compare_tensors(probs, expected_probs, f"probs {where}")
        except ExerciseError as error:
            unscaled = (q @ k.transpose(-2, -1)).softmax(-1)
            hint = ""
            if mask is None and isinstance(probs, torch.Tensor) and probs.shape == unscaled.shape \
                    and torch.allclose(probs, unscaled, atol=1e-5):
                hint = "\n  Hint: your probabilities equal softmax(q k^T): divide the scores by sqrt(d_k) first."
            elif isinstance(probs, torch.Tensor) and probs.shape == expected_probs.shape \
                    and not torch.allclose(probs.sum(-1), torch.ones(2, 3, 5), atol=1e-4):
                hint = "\n  Hint: each row of probs should sum to 1: softmax over the last axis (the keys)."
            elif mask is not None and isinstance(probs, torch.Tensor) and probs.shape == expected_probs.shape \
                    and probs[1, :, :, 3:].abs().max() > 1e-6:
                hint = ("\n  Hint: padded keys (mask 0) must get probability 0: set their scores to -inf "
                        "before the softmax, for every head and every query.")
            raise ExerciseError(str(error) + hint) from None
        compare_tensors(context, expected_context, f"context {where}")


@checker("split_heads", n_cases=2)
def check_split_heads(function: Callable) -> None:
    """Compare ``function(x, num_heads)`` with the ``(B, nh, T, hs)`` split."""
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)  # (B=2, T=3, H=8)
    for num_heads in (2, 4):
        try:
            got = function(x.clone(), num_heads)
        except NotImplementedError:
            raise
        except Exception as error:
            fail(f"Your function raised {type(error).__name__}: {error}\n  on x of shape (2, 3, 8), num_heads={num_heads}.")
        expected = split_heads(x, num_heads)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.equal(got, expected):
            wrong = x.view(2, num_heads, 3, 8 // num_heads)
            hint = ("viewing (B, T, H) directly as (B, nh, T, hs) mixes tokens; view as (B, T, nh, hs) "
                    "and then swap axes 1 and 2." if torch.equal(got, wrong) else
                    "head h must hold features h*hs .. (h+1)*hs - 1 of every token.")
            fail(f"split_heads(x, {num_heads}): the shape is right, the values are not: {hint}")
        compare_tensors(got, expected, f"split_heads(x of shape (2, 3, 8), num_heads={num_heads})", atol=0)

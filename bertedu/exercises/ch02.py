"""Chapter 2 exercises: attention with a padding mask, splitting heads, a causal mask.

    from bertedu.exercises import ch02
    ch02.check_attention(my_attention)      # (q, k, v, mask) -> (context, probs)
    ch02.check_split_heads(my_split_heads)  # (x (B, T, H), num_heads) -> (B, nh, T, hs)
    ch02.check_causal_attention(my_causal)  # (q, k, v) -> (context, probs), token i sees 0..i
    ch02.solution("attention")
"""
from __future__ import annotations

import math
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


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k, v: ``(B, nh, T, hs)``. Token ``i`` attends only to tokens ``0..i`` (itself and
    the past), as in a left-to-right language model such as GPT.

    Returns ``(context (B, nh, T, hs), probs (B, nh, T, T))``; ``probs`` is 0 above the diagonal.
    """
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, nh, T, T)
    future = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)  # (T, T) True where j > i
    probs = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    return probs @ v, probs


SOLUTIONS = {"attention": attention, "split_heads": split_heads, "causal_attention": causal_attention}


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


@checker("causal_attention", n_cases=2)
def check_causal_attention(function: Callable) -> None:
    """Compare ``function(q, k, v)`` with attention where token i sees only tokens 0..i."""
    g = torch.Generator().manual_seed(2)
    for shape in ((2, 3, 5, 4), (1, 2, 1, 8)):
        q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
        what = f"q, k, v of shape {shape}"
        got = call_learner(function, what, q.clone(), k.clone(), v.clone())
        if not isinstance(got, tuple) or len(got) != 2:
            fail("Return a tuple (context, probs).")
        context, probs = got
        expected_context, expected_probs = causal_attention(q, k, v)
        if isinstance(probs, torch.Tensor) and probs.shape == expected_probs.shape and shape[2] > 1:
            T = shape[2]
            if probs[..., torch.ones(T, T, dtype=torch.bool).tril(-1)].abs().max() < 1e-9:
                fail(f"{what}: token i sees only itself or the future; the past (j < i) must stay visible. "
                     "Did you mask the lower triangle instead of the upper one?")
            if probs[..., torch.ones(T, T, dtype=torch.bool).triu(1)].abs().max() > 1e-6:
                fail(f"{what}: probs above the diagonal are not 0: token i must not see tokens j > i "
                     "(the future). Mask where j > i, e.g. torch.ones(T, T).triu(diagonal=1).bool().")
            if torch.isnan(probs[..., 0, :]).any() or probs[..., 0, 0].sub(1).abs().max() > 1e-5:
                fail(f"{what}: the first token can see only itself, so probs[..., 0, 0] must be 1. "
                     "Keep the diagonal (triu(diagonal=1), not triu(diagonal=0)).")
        compare_tensors(probs, expected_probs, f"probs for {what}")
        compare_tensors(context, expected_context, f"context for {what}")

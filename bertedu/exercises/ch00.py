"""Chapter 0 exercises: statistics of the data that every later decision rests on.

    from bertedu.exercises import ch00
    ch00.check_tokens_cut(my_tokens_cut)                 # (lengths, budget) -> float in [0, 1]
    ch00.check_median_by_rating(my_median_by_rating)     # (ratings, lengths) -> {rating: median}
    ch00.check_tokens_per_word(my_prediction, texts, tokenizer)  # predict, then run
    ch00.solution("tokens_cut")
"""
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from bertedu.exercises import (
    call_learner,
    check_prediction,
    checker,
    fail,
    print_solution,
)

# -- reference solutions ------------------------------------------------------------------


def tokens_cut(lengths: Sequence[int], budget: int) -> float:
    """The share of all tokens that truncating every review to ``budget`` tokens throws away."""
    lost = sum(max(0, n - budget) for n in lengths)  # a short review loses nothing
    return lost / sum(lengths)


def median_by_rating(ratings: Sequence[int], lengths: Sequence[int]) -> dict[int, float]:
    """The median length of the reviews of each star rating, in rating order."""
    groups: dict[int, list[int]] = {}
    for rating, n in zip(ratings, lengths, strict=True):
        groups.setdefault(rating, []).append(n)
    return {rating: float(statistics.median(groups[rating])) for rating in sorted(groups)}


SOLUTIONS = {"tokens_cut": tokens_cut, "median_by_rating": median_by_rating}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------

CUT_CASES = [([100, 300, 600, 1000], 512), ([10, 20, 30], 512), ([700, 900], 256), ([5, 6, 7, 8], 6)]


@checker("tokens_cut", n_cases=len(CUT_CASES))
def check_tokens_cut(function: Callable) -> None:
    """Compare ``function(lengths, budget)`` with the share of tokens truncation removes."""
    for lengths, budget in CUT_CASES:
        got = call_learner(function, f"lengths={lengths}, budget={budget}", list(lengths), budget)
        expected = tokens_cut(lengths, budget)
        if isinstance(got, (int, float)) and abs(float(got) - expected) < 1e-9:
            continue
        hint = ""
        if isinstance(got, (int, float)):
            if abs(got - sum(n > budget for n in lengths) / len(lengths)) < 1e-9:
                hint = "that is the share of *reviews* longer than the budget; count the tokens they lose."
            elif abs(got - sum(n - budget for n in lengths) / sum(lengths)) < 1e-9:
                hint = "a review shorter than the budget loses nothing (not a negative number of tokens)."
            elif abs(got - expected * 100) < 1e-6:
                hint = "return a share between 0 and 1, not a percentage."
        fail(f"tokens_cut({lengths}, {budget}) returned {got!r}, expected {expected:.6f}."
             + (f"\n  Hint: {hint}" if hint else ""))


RATING_CASES = [([1, 10, 1, 10, 4], [100, 300, 200, 500, 50]), ([7, 7, 7, 2], [10, 20, 40, 5])]


@checker("median_by_rating", n_cases=len(RATING_CASES))
def check_median_by_rating(function: Callable) -> None:
    """Compare ``function(ratings, lengths)`` with the per-rating median length."""
    for ratings, lengths in RATING_CASES:
        got = call_learner(function, f"ratings={ratings}, lengths={lengths}", list(ratings), list(lengths))
        expected = median_by_rating(ratings, lengths)
        if not isinstance(got, dict):
            fail(f"Return a dict {{rating: median length}}; got {type(got).__name__}.")
        if sorted(got) != sorted(expected):
            fail(f"The keys must be the ratings that occur, {sorted(expected)}; yours are {sorted(got)}.")
        for rating, median in expected.items():
            if abs(float(got[rating]) - median) > 1e-9:
                values = sorted(n for r, n in zip(ratings, lengths) if r == rating)
                mean = sum(values) / len(values)
                hint = ("that is the mean; the median is the middle value (the mean of the two middle "
                        "ones for an even count)." if abs(float(got[rating]) - mean) < 1e-9 else "")
                fail(f"rating {rating} (lengths {values}): yours {got[rating]!r}, expected {median:g}."
                     + (f"\n  Hint: {hint}" if hint else ""))


def tokens_per_word(texts: Sequence[str], tokenizer: Any) -> float:
    """WordPiece tokens (without [CLS]/[SEP]) per whitespace-separated word."""
    tokens = sum(len(tokenizer.tokenize(text)) for text in texts)
    words = sum(len(text.split()) for text in texts)
    return tokens / words


@checker("tokens_per_word", n_cases=1)
def check_tokens_per_word(function: Callable[[], float], texts: Sequence[str], tokenizer: Any) -> None:
    """Predict, then run: how many WordPiece tokens does one word of a review become, on average?"""
    check_prediction(function, lambda: tokens_per_word(texts, tokenizer),
                     what=f"tokens per word on {len(texts)} reviews", tolerance=0.1,
                     why="punctuation glued to a word (\"great!\", \"film,\") becomes tokens of its own, "
                         "and rare words and names are cut into several pieces; both push the ratio above 1.")

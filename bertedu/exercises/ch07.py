"""Chapter 7 exercises: swapping a new attribute's words, a paired test with no distribution,
and a confidence interval with no distribution (the bootstrap).

    from bertedu.exercises import ch07
    ch07.check_swap_words(my_swap_words)        # (text, pairs) -> text with each word and its partner swapped
    ch07.check_sign_flip_p_value(my_p_value)    # (differences) -> exact two-sided p-value
    ch07.check_bootstrap_interval(my_interval)  # (differences, n_resamples, seed) -> (low, high)
    ch07.solution("swap_words")
"""
from __future__ import annotations

import itertools
import math
import re
from typing import Callable

import numpy as np

from bertedu.exercises import call_learner, checker, fail, print_solution

# -- reference solutions ------------------------------------------------------------------


def swap_words(text: str, pairs: list[tuple[str, str]]) -> str:
    """Swap every whole word of ``text`` that is in ``pairs`` with its partner, both ways, in one pass.

    Matching ignores case; the replacement takes the case of the word it replaces
    (lower, Title or UPPER).
    """
    partner = {}
    for a, b in pairs:
        partner[a.lower()], partner[b.lower()] = b.lower(), a.lower()
    if not partner:
        return text
    words = sorted(partner, key=len, reverse=True)
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE)

    def replace(match: re.Match) -> str:
        word, new = match.group(0), partner[match.group(0).lower()]
        if len(word) > 1 and word.isupper():
            return new.upper()
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    return pattern.sub(replace, text)


def sign_flip_p_value(differences: list[float]) -> float:
    """The exact two-sided sign-flip (paired permutation) p-value of the mean difference.

    Count the sign patterns, of all ``2^n``, whose mean is at least as far from 0 as the
    observed mean (the observed pattern is one of them), and divide by ``2^n``.
    """
    n = len(differences)
    observed = abs(sum(differences) / n)
    at_least = 0
    for signs in itertools.product((1, -1), repeat=n):
        mean = abs(sum(s * d for s, d in zip(signs, differences)) / n)
        at_least += mean >= observed - 1e-12 * max(1.0, observed)
    return at_least / 2 ** n


def bootstrap_interval(differences: list[float], n_resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean paired difference.

    Draw ``n`` differences *with replacement*, ``n_resamples`` times; the interval runs from the
    2.5th to the 97.5th percentile of the resamples' means. Each pair is resampled whole (its
    one difference), so the pairing is kept.
    """
    d = np.asarray(differences, dtype=np.float64)  # (n,)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_resamples, len(d)))].mean(axis=1)  # (n_resamples,)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


SOLUTIONS = {"swap_words": swap_words, "sign_flip_p_value": sign_flip_p_value,
             "bootstrap_interval": bootstrap_interval}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------

AGE_PAIRS = [("young", "old"), ("younger", "older"), ("teenager", "pensioner"), ("kids", "adults")]
SWAP_CASES = [
    ("The young man and the old woman.", AGE_PAIRS),
    ("Young viewers, OLD viewers and older ones", AGE_PAIRS),
    ("A bold, golden film: the teenager's favourite.", AGE_PAIRS),  # "bold", "golden": not words of the list
    ("Kids love it; adults-only jokes aside.", AGE_PAIRS),
    ("Nothing to change here.", AGE_PAIRS),
    ("The North beat the South.", [("north", "south")]),
]


def _swap_hint(text: str, got: str, expected: str, pairs: list[tuple[str, str]]) -> str:
    naive = text
    for a, b in pairs:
        naive = naive.replace(a, b)
    if got == naive and naive != expected:
        return "str.replace changes letters inside longer words too; match whole words only (\\b in a regex)."
    if got.lower() == expected.lower():
        return "the words are right but the case is not: 'Young' -> 'Old', 'OLD' -> 'YOUNG'."
    if len(re.findall(r"\w+", got)) == len(re.findall(r"\w+", expected)) and got != expected:
        one_way = text
        for a, b in pairs:
            one_way = re.sub(rf"\b{a}\b", b, one_way, flags=re.IGNORECASE)
        if got.lower() == one_way.lower():
            return "only one direction was swapped: 'old' must become 'young' as well, in the same pass."
        return "swap in one pass: replacing a -> b and then b -> a turns both into a."
    return ""


@checker("swap_words", n_cases=len(SWAP_CASES))
def check_swap_words(function: Callable) -> None:
    """Compare ``function(text, pairs)`` with the reference on whole words, case and one-pass swapping."""
    for text, pairs in SWAP_CASES:
        what = f"text {text!r} with pairs {pairs}"
        got = call_learner(function, what, text, list(pairs))
        expected = swap_words(text, pairs)
        if got != expected:
            hint = _swap_hint(text, got, expected, pairs) if isinstance(got, str) else "return a str."
            fail(f"On {what}:\n  got      {got!r}\n  expected {expected!r}" + (f"\n  Hint: {hint}" if hint else ""))


P_VALUE_CASES = [
    [1.0, 2.0, 3.0],
    [0.02, -0.01, 0.03, 0.05, 0.0, 0.01],
    [0.3, -0.2, 0.1, -0.4, 0.25, 0.05, -0.1, 0.2],
    [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, -0.01],
    [0.0, 0.0, 0.0],
]


@checker("sign_flip_p_value", n_cases=len(P_VALUE_CASES))
def check_sign_flip_p_value(function: Callable) -> None:
    """Compare ``function(differences)`` with the exact sign-flip p-value on small samples."""
    for d in P_VALUE_CASES:
        what = f"differences {d}"
        got = call_learner(function, what, list(d))
        expected = sign_flip_p_value(d)
        if isinstance(got, (int, float)) and math.isclose(float(got), expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        hint = ""
        if isinstance(got, (int, float)):
            n = len(d)
            if math.isclose(float(got), expected / 2, rel_tol=1e-9):
                hint = "that is a one-sided p-value: compare |mean|, so patterns far out on either side count."
            elif math.isclose(float(got), expected - 1 / 2 ** n, rel_tol=1e-9) or \
                    math.isclose(float(got), (expected * 2 ** n - 2) / 2 ** n, rel_tol=1e-9):
                hint = "count the patterns whose |mean| is *at least* the observed one, the observed pattern included (>=, not >)."
            elif 0 <= float(got) <= 1 and not math.isclose(float(got) * 2 ** n, round(float(got) * 2 ** n), abs_tol=1e-6):
                hint = f"an exact test over 2^{n} = {2 ** n} sign patterns gives a multiple of 1/{2 ** n}."
        else:
            hint = "return a float between 0 and 1."
        fail(f"On {what}: got {got!r}, expected {expected:.6g}." + (f"\n  Hint: {hint}" if hint else ""))


def _skewed_cases() -> list[np.ndarray]:
    """Differences like the audit's: mostly small, a few large ones on one side (so the
    bootstrap interval is not symmetric about the mean, unlike the t-interval)."""
    rng = np.random.default_rng(7)
    cases = []
    for n, share in ((60, 0.1), (200, 0.05), (40, 0.2)):
        d = rng.normal(0.0, 0.01, n)
        big = rng.random(n) < share
        d[big] += rng.exponential(0.15, big.sum())
        cases.append(d)
    return cases


BOOTSTRAP_CASES = _skewed_cases()


@checker("bootstrap_interval", n_cases=len(BOOTSTRAP_CASES))
def check_bootstrap_interval(function: Callable) -> None:
    """Compare ``function(differences, n_resamples=5000, seed=1)`` with scipy's percentile bootstrap.

    Resampling is random, so the endpoints must agree within a tenth of the interval's width
    (the Monte-Carlo error at 5,000 resamples is a few hundredths of it).
    """
    from scipy import stats

    from bertedu.bias import paired_t_test

    for d in BOOTSTRAP_CASES:
        what = f"{len(d)} differences (mean {d.mean():+.4f})"
        got = call_learner(function, what, d.tolist(), 5_000, 1)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            fail(f"On {what}: return the interval as a pair (low, high); got {got!r}.")
        low, high = float(got[0]), float(got[1])
        result = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=20_000, method="percentile",
                                 random_state=0)
        ref_low, ref_high = result.confidence_interval.low, result.confidence_interval.high
        width = ref_high - ref_low
        if abs(low - ref_low) <= 0.1 * width and abs(high - ref_high) <= 0.1 * width:
            continue
        t_interval = paired_t_test(np.zeros_like(d), d)  # the t-interval of the mean of d
        hint = ""
        if low > high:
            hint = "low comes first: (2.5th percentile, 97.5th percentile)."
        elif abs(low - 100 * ref_low) <= 10 * width and abs(high - 100 * ref_high) <= 10 * width:
            hint = "the interval is in percentage points; return it on the scale of the differences."
        elif high - low < 0.05 * width:
            hint = ("the interval has almost no width: draw the resamples *with* replacement "
                    "(a permutation of all n differences always has the same mean).")
        elif high - low > 3 * width:
            hint = ("far too wide: take the percentiles of the resamples' *means*, not of the differences "
                    "themselves (the spread of a mean of n values is about s / sqrt(n)).")
        elif abs(low - t_interval.ci_low) < 0.02 * width and abs(high - t_interval.ci_high) < 0.02 * width:
            hint = ("that is the t-interval, symmetric about the mean; the bootstrap reads the interval off "
                    "the resampled means, and with skewed differences it is not symmetric.")
        fail(f"On {what}: got ({low:.5f}, {high:.5f}); the percentile bootstrap gives about "
             f"({ref_low:.5f}, {ref_high:.5f})." + (f"\n  Hint: {hint}" if hint else ""))

"""Chapter 7 exercises: swapping a new attribute's words, and a paired test with no distribution.

    from bertedu.exercises import ch07
    ch07.check_swap_words(my_swap_words)        # (text, pairs) -> text with each word and its partner swapped
    ch07.check_sign_flip_p_value(my_p_value)    # (differences) -> exact two-sided p-value
    ch07.solution("swap_words")
"""
from __future__ import annotations

import itertools
import math
import re
from typing import Callable

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


SOLUTIONS = {"swap_words": swap_words, "sign_flip_p_value": sign_flip_p_value}


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

"""Chapter 1 exercises: WordPiece, sentence-pair inputs, padding, the [UNK] rate, a prediction.

    from bertedu.exercises import ch01
    ch01.check_wordpiece(my_wordpiece)       # my_wordpiece(word, vocab) -> list[str]
    ch01.check_pair_inputs(my_pair_inputs)   # (ids_a, ids_b, cls_id, sep_id) -> (input_ids, token_type_ids)
    ch01.check_pad_batch(my_pad_batch)       # (sequences, pad_id) -> (input_ids, attention_mask)
    ch01.check_unk_rate(my_unk_rate)         # (words, vocab) -> share of words that become [UNK]
    ch01.check_split_share(my_prediction, words, vocab)  # predict, then run
    ch01.solution("wordpiece")               # print a reference solution
"""
from __future__ import annotations

from typing import Callable

import torch

from bertedu.exercises import (
    call_learner,
    check_prediction,
    checker,
    compare_tensors,
    fail,
    print_solution,
)

# -- reference solutions ------------------------------------------------------------------


def wordpiece(word: str, vocab: set[str] | dict[str, int]) -> list[str]:
    """Greedy longest-match-first WordPiece; ``[UNK]`` if some position has no match."""
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:  # nothing matched at `start`
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def pair_inputs(ids_a: list[int], ids_b: list[int], cls_id: int, sep_id: int) -> tuple[list[int], list[int]]:
    """``[CLS] A [SEP] B [SEP]`` and its segment ids: 0 up to the first [SEP], 1 after."""
    input_ids = [cls_id, *ids_a, sep_id, *ids_b, sep_id]
    token_type_ids = [0] * (len(ids_a) + 2) + [1] * (len(ids_b) + 1)
    return input_ids, token_type_ids


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence: ``(B, T)`` ids and a ``(B, T)`` 0/1 mask."""
    T = max(len(s) for s in sequences)
    input_ids = torch.tensor([s + [pad_id] * (T - len(s)) for s in sequences])
    attention_mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in sequences])
    return input_ids, attention_mask


def unk_rate(words: list[str], vocab: set[str] | dict[str, int]) -> float:
    """The share of words (not pieces) that WordPiece turns into ``[UNK]``."""
    from bertedu.tokenization import wordpiece as package_wordpiece

    return sum(package_wordpiece(word, vocab) == ["[UNK]"] for word in words) / len(words)


SOLUTIONS = {"wordpiece": wordpiece, "pair_inputs": pair_inputs, "pad_batch": pad_batch, "unk_rate": unk_rate}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------

TOY_VOCAB = {"un", "##aff", "##able", "a", "##a", "##aa", "play", "##ing", "##s", "[UNK]"}
WORDS = ["unaffable", "a", "aaaa", "playing", "plays", "unplayable", "xyz", "playingx", "pla"]


def _call(function: Callable, *args):
    shown = ", ".join(repr(a) if not isinstance(a, (set, dict)) else f"<vocab of {len(a)}>" for a in args)
    return call_learner(function, f"input ({shown})", *args)


@checker("wordpiece", n_cases=len(WORDS))
def check_wordpiece(function: Callable[[str, set[str]], list[str]]) -> None:
    """Compare ``function(word, vocab)`` with greedy longest-match-first WordPiece."""
    for word in WORDS:
        got, expected = _call(function, word, TOY_VOCAB), wordpiece(word, TOY_VOCAB)
        if got == expected:
            continue
        hint = ""
        if isinstance(got, list) and "[UNK]" in got and len(got) > 1:
            hint = "If one position has no match, the *whole* word becomes a single [UNK]."
        elif isinstance(got, list) and any(not p.startswith("##") for p in got[1:]):
            hint = "Pieces after the first need the '##' prefix (they continue a word)."
        elif got == ["[UNK]"]:
            hint = ("The word can be split, yet you returned [UNK]: at each position try the longest "
                    "candidate first, then shorter ones, with '##' before continuation pieces.")
        elif isinstance(got, list) and len(got) > len(expected):
            hint = "Try the *longest* candidate first and shorten it one character at a time."
        fail(f"wordpiece({word!r}) returned {got!r}, expected {expected!r}.\n"
             f"  vocab: {sorted(TOY_VOCAB)}\n  {hint}".rstrip())


PAIRS = [([7, 8, 9], [4, 5]), ([7], []), ([], [3, 3, 3])]


@checker("pair_inputs", n_cases=len(PAIRS))
def check_pair_inputs(function: Callable) -> None:
    """Compare ``function(ids_a, ids_b, cls_id, sep_id)`` with ``[CLS] A [SEP] B [SEP]``."""
    for ids_a, ids_b in PAIRS:
        got = _call(function, list(ids_a), list(ids_b), 101, 102)
        expected = pair_inputs(ids_a, ids_b, 101, 102)
        if not isinstance(got, tuple) or len(got) != 2:
            fail(f"Return a tuple (input_ids, token_type_ids); got {got!r}.")
        got = (list(got[0]), list(got[1]))
        if got[0] != expected[0]:
            fail(f"input_ids for A={ids_a}, B={ids_b} (cls=101, sep=102): got {got[0]}, "
                 f"expected {expected[0]}. The layout is [CLS] A [SEP] B [SEP].")
        if got[1] != expected[1]:
            fail(f"token_type_ids for A={ids_a}, B={ids_b}: got {got[1]}, expected {expected[1]}. "
                 f"[CLS], A and the first [SEP] are segment 0; B and the last [SEP] are segment 1.")


BATCHES = [[[101, 5, 6, 102], [101, 7, 102]], [[1, 2], [3, 4]], [[9], [9, 9, 9], [9, 9]]]


@checker("pad_batch", n_cases=len(BATCHES))
def check_pad_batch(function: Callable) -> None:
    """Compare ``function(sequences, pad_id)`` with right padding and its attention mask."""
    for sequences in BATCHES:
        got = _call(function, [list(s) for s in sequences], 0)
        expected = pad_batch(sequences, 0)
        if not isinstance(got, tuple) or len(got) != 2:
            fail(f"Return a tuple (input_ids, attention_mask) of tensors; got {type(got).__name__}.")
        compare_tensors(got[0], expected[0], f"input_ids for {sequences}", atol=0)
        compare_tensors(got[1], expected[1], f"attention_mask for {sequences}", atol=0)


UNK_CASES = [["unaffable", "xyz", "plays", "zzz"], ["a", "aaaa"], ["xyz", "playingx", "play"]]


@checker("unk_rate", n_cases=len(UNK_CASES))
def check_unk_rate(function: Callable) -> None:
    """Compare ``function(words, vocab)`` with the share of words that become ``[UNK]``."""
    for words in UNK_CASES:
        got = _call(function, list(words), TOY_VOCAB)
        expected = unk_rate(words, TOY_VOCAB)
        if isinstance(got, (int, float)) and abs(float(got) - expected) < 1e-9:
            continue
        pieces = [p for word in words for p in wordpiece(word, TOY_VOCAB)]
        hint = ""
        if isinstance(got, (int, float)) and abs(got - pieces.count("[UNK]") / len(pieces)) < 1e-9:
            hint = "that is the share of *pieces*; the question is about words (one [UNK] per unknown word)."
        elif isinstance(got, (int, float)) and abs(got - sum(w not in TOY_VOCAB for w in words) / len(words)) < 1e-9:
            hint = ("that counts words missing from the vocabulary as a whole; most of them WordPiece "
                    "can still split into pieces. Only a word with no possible split becomes [UNK].")
        fail(f"unk_rate({words}) returned {got!r}, expected {expected:g}.\n  vocab: {sorted(TOY_VOCAB)}"
             + (f"\n  Hint: {hint}" if hint else ""))


def split_share(words: list[str], vocab: set[str] | dict[str, int]) -> float:
    """The share of words, in percent, that WordPiece cuts into more than one piece."""
    from bertedu.tokenization import wordpiece as package_wordpiece

    return 100 * sum(len(package_wordpiece(word, vocab)) > 1 for word in words) / len(words)


@checker("split_share", n_cases=1)
def check_split_share(function: Callable[[], float], words: list[str], vocab: set[str] | dict[str, int]) -> None:
    """Predict, then run: what percentage of the words of real reviews does WordPiece split?"""
    check_prediction(function, lambda: split_share(words, vocab),
                     what=f"words split into several pieces ({len(words):,} words)", tolerance=5, unit="%",
                     why="word frequencies are skewed: 'the', 'a', 'and', 'movie' and punctuation make up a "
                         "large share of all words, and every one of them is a whole entry of the vocabulary.")

"""Chapter 7: a CrowS-Pairs-style probe of a masked language model.

CrowS-Pairs (Nangia et al., 2020) asks which of two minimally different sentences a
masked LM finds more likely: one that follows a stereotype (``sent_more``) and the same
sentence about another group (``sent_less``). The score is the share of pairs where the
model prefers the stereotyping sentence: 50% is no preference; bert-base scores about 60%.

Likelihood under a masked LM: the *pseudo*-log-likelihood (Salazar et al., 2020),
as CrowS-Pairs computes it. Words shared by both sentences are the *unmodified* tokens
``U``; the group words that differ are the modified ones ``M``. Each unmodified token is
masked in turn and scored given everything else, modified tokens included::

    score(S) = sum_{u in U} log P(s_u | S without s_u)

Conditioning on the group word and scoring the shared words keeps the comparison fair
when the two group words differ in frequency ("Dutch" is rarer than "Irish"): a rare word
is never itself scored.

The authors' caveat, which holds here twice over (a few dozen pairs written for this
course, a 2-layer model): a score near 50% does not prove a model unbiased; the pairs
cover few stereotypes, and what the score measures is a preference between two
sentences, not harm.
"""
from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from torch import Tensor

from bertedu.bias import wilson_interval

PAIRS_RESOURCE = "resources/crows_pairs.json"


@dataclass(frozen=True)
class CrowsPair:
    """A stereotyping sentence and its minimally different counterpart."""

    sent_more: str
    sent_less: str
    bias_type: str


def load_crows_pairs() -> list[CrowsPair]:
    """The pairs written for the course (``resources/crows_pairs.json``, with provenance)."""
    data = json.loads(resources.files("bertedu").joinpath(PAIRS_RESOURCE).read_text(encoding="utf-8"))
    return [CrowsPair(p["sent_more"], p["sent_less"], p["bias_type"]) for p in data["pairs"]]


def unmodified_positions(ids_a: Sequence[int], ids_b: Sequence[int]) -> tuple[list[int], list[int]]:
    """Positions of the tokens the two sequences share (difflib's matching blocks), in each.

    >>> unmodified_positions([1, 7, 8, 9, 2], [1, 5, 8, 9, 2])
    ([0, 2, 3, 4], [0, 2, 3, 4])
    """
    matcher = difflib.SequenceMatcher(None, list(ids_a), list(ids_b), autojunk=False)
    positions_a, positions_b = [], []
    for block in matcher.get_matching_blocks():
        positions_a += range(block.a, block.a + block.size)
        positions_b += range(block.b, block.b + block.size)
    return positions_a, positions_b


@torch.no_grad()
def pseudo_log_likelihood(model: Any, input_ids: Tensor, positions: Sequence[int], mask_token_id: int) -> float:
    """``sum_{i in positions} log P(input_ids[i] | input_ids with position i masked)``.

    ``input_ids``: ``(T,)`` one sentence with ``[CLS]`` and ``[SEP]``. One forward pass
    over a batch of ``len(positions)`` copies, copy ``k`` masked at ``positions[k]``.
    """
    positions = list(positions)
    if not positions:
        return 0.0
    device = next(model.parameters()).device
    batch = input_ids.to(device).unsqueeze(0).repeat(len(positions), 1)  # (P, T)
    rows = torch.arange(len(positions), device=device)
    columns = torch.tensor(positions, device=device)
    targets = batch[rows, columns].clone()  # (P,)
    batch[rows, columns] = mask_token_id
    logits = model(batch, attention_mask=torch.ones_like(batch)).prediction_logits  # (P, T, V)
    log_probs = torch.log_softmax(logits[rows, columns].float(), dim=-1)  # (P, V)
    return float(log_probs[rows, targets].sum())


def pair_scores(model: Any, tokenizer: Any, pair: CrowsPair) -> tuple[float, float]:
    """The pseudo-log-likelihoods of ``sent_more`` and ``sent_less``, over their shared tokens.

    ``[CLS]`` and ``[SEP]`` are shared but never scored (as in CrowS-Pairs).
    """
    ids_more = tokenizer(pair.sent_more, return_tensors="pt")["input_ids"][0]  # (T1,)
    ids_less = tokenizer(pair.sent_less, return_tensors="pt")["input_ids"][0]  # (T2,)
    shared_more, shared_less = unmodified_positions(ids_more.tolist(), ids_less.tolist())
    keep = [(a, b) for a, b in zip(shared_more, shared_less) if 0 < a < len(ids_more) - 1]
    mask_id = tokenizer.mask_token_id
    return (pseudo_log_likelihood(model, ids_more, [a for a, _ in keep], mask_id),
            pseudo_log_likelihood(model, ids_less, [b for _, b in keep], mask_id))


@dataclass
class CrowsResult:
    """How often the model prefers the stereotyping sentence, with a 95% Wilson interval."""

    n: int
    n_more: int  # pairs where score(sent_more) > score(sent_less)
    ci_low: float
    ci_high: float
    by_type: dict[str, tuple[int, int]]  # bias type -> (n_more, n)
    scores: list[tuple[float, float]]  # (score_more, score_less) per pair

    @property
    def percent(self) -> float:
        return 100 * self.n_more / self.n

    def summary(self) -> str:
        lines = [f"Prefers the stereotyping sentence in {self.n_more} of {self.n} pairs: {self.percent:.1f}% "
                 f"(95% CI {100 * self.ci_low:.1f}-{100 * self.ci_high:.1f}%; 50% = no preference)"]
        for name, (k, n) in self.by_type.items():
            lines.append(f"  {name:<14} {k:>2} of {n:>2} ({100 * k / n:.0f}%)")
        return "\n".join(lines)


def crows_probe(model: Any, tokenizer: Any, pairs: Sequence[CrowsPair] | None = None) -> CrowsResult:
    """Score every pair; count the pairs where the stereotyping sentence is more likely."""
    pairs = list(pairs) if pairs is not None else load_crows_pairs()
    model.eval()
    scores = [pair_scores(model, tokenizer, pair) for pair in pairs]
    prefers = [more > less for more, less in scores]
    by_type: dict[str, tuple[int, int]] = {}
    for pair, more in zip(pairs, prefers):
        k, n = by_type.get(pair.bias_type, (0, 0))
        by_type[pair.bias_type] = (k + more, n + 1)
    low, high = wilson_interval(sum(prefers), len(pairs))
    return CrowsResult(len(pairs), sum(prefers), low, high, by_type, scores)


__all__ = [
    "CrowsPair",
    "CrowsResult",
    "crows_probe",
    "load_crows_pairs",
    "pair_scores",
    "pseudo_log_likelihood",
    "unmodified_positions",
]

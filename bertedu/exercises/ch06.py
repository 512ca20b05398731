"""Chapter 6 exercises: a head's entropy, where [CLS] looks, and a prediction about rollout.

    from bertedu.exercises import ch06
    ch06.check_attention_entropy(my_entropy)     # probs (nh, T, T) -> (nh,) mean entropy in nats
    ch06.check_cls_share(my_cls_share)           # (attentions, tokens, words) -> (L,)
    ch06.check_rollout_prediction("more", model, tokenizer, texts)   # predict, then run
    ch06.solution("attention_entropy")
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from bertedu.exercises import (
    call_learner,
    checker,
    compare_tensors,
    fail,
    print_solution,
)

# -- reference solutions ------------------------------------------------------------------


def attention_entropy(probs: torch.Tensor) -> torch.Tensor:
    """probs: ``(nh, T, T)``, each row sums to 1. Returns ``(nh,)``: each head's entropy
    ``-sum_j p_j ln p_j`` in nats, averaged over the ``T`` queries (``0 ln 0 = 0``)."""
    logs = torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
    return -(probs * logs).sum(-1).mean(-1)


def cls_share(attentions: Sequence[torch.Tensor], tokens: Sequence[str], words: set[str]) -> torch.Tensor:
    """attentions: ``L`` tensors ``(1, nh, T, T)``; tokens: the ``T`` tokens. Returns ``(L,)``:
    in each layer, the share of ``[CLS]``'s attention (its row, position 0) that goes to
    tokens in ``words``, averaged over the heads."""
    selected = torch.tensor([token in words for token in tokens], dtype=torch.float32)  # (T,)
    return torch.stack([layer[0, :, 0, :].float().mean(0) @ selected for layer in attentions])


def rollout_is_more_spread(model: Any, tokenizer: Any, texts: Sequence[str]) -> bool:
    """True when the entropy of ``[CLS]``'s rollout row is higher than that of its
    last-layer attention (mean over heads), on average over ``texts``."""
    from bertedu.explain import attention_rollout
    from bertedu.head_stats import row_entropy

    rollout, last = [], []
    for text in texts:
        encoded = tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
        with torch.no_grad():
            attentions = model(encoded["input_ids"], output_attentions=True).attentions
        rollout.append(row_entropy(attention_rollout(attentions)[0]))
        last.append(row_entropy(attentions[-1][0, :, 0, :].float().mean(0)))
    return bool(torch.stack(rollout).mean() > torch.stack(last).mean())


SOLUTIONS = {"attention_entropy": attention_entropy, "cls_share": cls_share,
             "rollout_is_more_spread": rollout_is_more_spread}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------


def _entropy_cases() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    soft = torch.randn(3, 5, 5, generator=g).mul(2).softmax(-1)  # (nh=3, T=5, T=5)
    hard = soft.clone()
    hard[0] = torch.eye(5)  # a head whose every query looks at itself: entropy 0, and 0 ln 0 terms
    hard[1, :, 3:] = 0  # some exact zeros
    hard[1] = hard[1] / hard[1].sum(-1, keepdim=True)
    return [soft, hard]


@checker("attention_entropy", n_cases=2)
def check_attention_entropy(function: Callable) -> None:
    """Compare ``function(probs)`` with the mean row entropy of every head, in nats."""
    for index, probs in enumerate(_entropy_cases()):
        what = f"case {index + 1} (probs of shape {tuple(probs.shape)}{', with exact zeros' if index else ''})"
        got = call_learner(function, what, probs.clone())
        expected = attention_entropy(probs)
        if isinstance(got, torch.Tensor) and not torch.isfinite(got).all():
            fail(f"{what}: NaN or inf. A probability of exactly 0 gives 0 * log(0) = 0 * -inf = NaN: "
                 "treat those terms as 0 (e.g. torch.where(probs > 0, probs.log(), 0)).")
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            if torch.allclose(got, expected / math.log(2), atol=1e-4) and expected.abs().max() > 0:
                fail(f"{what}: your values are in bits (log base 2); use the natural log (nats).")
            if torch.allclose(got, -expected, atol=1e-4) and expected.abs().max() > 0:
                fail(f"{what}: the sign is flipped: entropy is MINUS the sum of p log p.")
        if isinstance(got, torch.Tensor) and got.shape == expected.shape + (probs.shape[-1],):
            fail(f"{what}: shape {tuple(got.shape)} is one entropy per query; average over the queries "
                 "to get one number per head.")
        compare_tensors(got, expected, what, atol=1e-4)


def _cls_cases() -> list[tuple[list[torch.Tensor], list[str], set[str]]]:
    g = torch.Generator().manual_seed(60)
    tokens = ["[CLS]", "not", "good", ",", "great", "good", "[SEP]"]
    attentions = [torch.randn(1, 4, 7, 7, generator=g).mul(2).softmax(-1) for _ in range(3)]  # L=3, nh=4
    return [(attentions, tokens, {"good", "great"}), (attentions, tokens, {"not"})]


@checker("cls_share", n_cases=2)
def check_cls_share(function: Callable) -> None:
    """Compare ``function(attentions, tokens, words)`` with [CLS]'s share to ``words`` per layer."""
    for attentions, tokens, words in _cls_cases():
        what = f"3 layers x 4 heads, tokens {tokens}, words {sorted(words)}"
        got = call_learner(function, what, [a.clone() for a in attentions], list(tokens), set(words))
        if isinstance(got, (list, tuple)):
            got = torch.tensor([float(x) for x in got])
        expected = cls_share(attentions, tokens, words)
        selected = torch.tensor([t in words for t in tokens], dtype=torch.float32)
        if isinstance(got, torch.Tensor) and got.shape == (3, 4):
            fail(f"{what}: shape (3, 4) is one share per layer and head; average over the heads.")
        column = torch.stack([(a[0, :, :, 0].mean(0) * selected).sum() for a in attentions])
        transposed = torch.stack([a[0, :, :, 0].mean(0) @ selected for a in attentions])
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and (
                torch.allclose(got, column, atol=1e-5) or torch.allclose(got, transposed, atol=1e-5)):
            fail(f"{what}: you read column 0 (how much the words attend TO [CLS]); [CLS]'s own "
                 "attention is row 0: attentions[layer][0, :, 0, :].")
        first_only = torch.tensor([t in words and t not in tokens[:i] for i, t in enumerate(tokens)],
                                  dtype=torch.float32)
        once = torch.stack([a[0, :, 0, :].mean(0) @ first_only for a in attentions])
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.allclose(got, once, atol=1e-5) \
                and not torch.allclose(once, expected):
            fail(f"{what}: a word that occurs twice ('good') counts at both positions.")
        compare_tensors(got, expected, what, atol=1e-5)


def check_rollout_prediction(prediction: str, model: Any, tokenizer: Any, texts: Sequence[str]) -> None:
    """Predict-then-run: is ``[CLS]``'s rollout row ``"more"`` or ``"less"`` spread out (higher
    entropy) than its last-layer attention? The checker runs it and says who was right."""
    if prediction is None or prediction is NotImplemented:
        print("`rollout_prediction` is not set yet: write \"more\" or \"less\" and run the check again.")
        return
    if prediction not in ("more", "less"):
        fail(f'Answer "more" or "less", not {prediction!r}.')
    answer = "more" if rollout_is_more_spread(model, tokenizer, texts) else "less"
    if prediction != answer:
        fail(f"On these {len(texts)} reviews the rollout of [CLS] is {answer} spread out than its last-layer "
             "attention. Why: each layer of the rollout mixes the attention with the identity (the residual) "
             "and multiplies through every layer, so mass flows to whatever earlier layers collected.")
    print(f"✓ rollout_prediction: right, the rollout is {answer} spread out on these {len(texts)} reviews.")

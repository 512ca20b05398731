"""From attention to explanation (chapter 6): which words did a classifier use?

Four ways to score the words of one review for a fine-tuned classifier, and a test:

- ``cls_attention``: how much ``[CLS]`` attends to each token in the last layer (what
  chapter 5 drew), averaged over heads;
- ``attention_rollout`` (Abnar & Zuidema, 2020): attention multiplied through the layers,
  with the residual connection counted as half of each layer, ``A~ = 0.5 A + 0.5 I``;
- ``gradient_x_input``: ``|sum_h  d log p(c) / d e_th * e_th|`` for the word embedding
  ``e_t`` of token ``t`` and the predicted class ``c``;
- ``integrated_gradients`` (Sundararajan et al., 2017): the gradient averaged along the
  straight path from a baseline (every word replaced by ``[PAD]``'s embedding) to the input,
  times ``input - baseline``; the token scores add up to ``log p(c | input) - log p(c | baseline)``.
- ``deletion_drop``: delete the top-k words of a ranking and measure how much the
  probability of the predicted class falls. A ranking that explains the decision should
  make it fall faster than a random one (Jain & Wallace, 2019; Wiegreffe & Pinter, 2019).

Shapes: ``T`` tokens of one review (``[CLS]`` and ``[SEP]`` included), ``H`` hidden,
``L`` layers, ``nh`` heads, ``W`` words. ``model`` is a
``bertedu.classification.BertForSequenceClassification`` (anything with ``.bert`` and
``.logits``).
"""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from bertedu.head_stats import word_ids

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]")


def attention_rollout(attentions: Sequence[Tensor], residual: bool = True) -> Tensor:
    """Attention rollout: ``(T, T)``, row ``i`` = how much of token ``i``'s last-layer
    vector flows from each input token.

    Args:
        attentions: ``L`` tensors ``(1, nh, T, T)`` or ``(nh, T, T)``.
        residual: add the identity for the residual connection (Abnar & Zuidema's choice).
    """
    rollout = None
    for layer in attentions:
        probs = layer.reshape(-1, *layer.shape[-2:]).float().mean(0)  # (T, T), mean over heads
        if residual:
            probs = 0.5 * probs + 0.5 * torch.eye(probs.shape[-1])
            probs = probs / probs.sum(-1, keepdim=True)
        rollout = probs if rollout is None else probs @ rollout  # layer l after layers < l
    return rollout


@contextlib.contextmanager
def replaced_word_embeddings(model: nn.Module, embeddings: Tensor) -> Iterator[None]:
    """Inside the block, the word-embedding layer returns ``embeddings (N, T, H)``."""
    layer = model.bert.embeddings.word_embeddings
    handle = layer.register_forward_hook(lambda module, inputs, output: embeddings)
    try:
        yield
    finally:
        handle.remove()


def log_probability(model: nn.Module, input_ids: Tensor, embeddings: Tensor, target: int) -> Tensor:
    """``(N,)``: log p(target) for ``N`` copies of ``input_ids (1, T)`` with the given word
    embeddings ``(N, T, H)`` (position and segment embeddings are added as usual)."""
    with replaced_word_embeddings(model, embeddings):
        logits = model(input_ids.expand(embeddings.shape[0], -1)).logits  # (N, C)
    return logits.float().log_softmax(-1)[:, target]


def gradient_x_input(model: nn.Module, input_ids: Tensor, target: int) -> Tensor:
    """``(T,)``: ``|gradient . embedding|`` of log p(target) for each token of ``input_ids (1, T)``."""
    embeddings = model.bert.embeddings.word_embeddings(input_ids).detach().requires_grad_()  # (1, T, H)
    score = log_probability(model, input_ids, embeddings, target).sum()
    (gradient,) = torch.autograd.grad(score, embeddings)
    return (gradient * embeddings).sum(-1)[0].abs().detach()  # (T,)


def baseline_ids(input_ids: Tensor, special_ids: Sequence[int], pad_id: int) -> Tensor:
    """``input_ids`` with every token except the special ones replaced by ``pad_id``."""
    special = torch.isin(input_ids, torch.tensor(list(special_ids)))
    return torch.where(special, input_ids, torch.full_like(input_ids, pad_id))


def integrated_gradients(model: nn.Module, input_ids: Tensor, target: int, baseline: Tensor,
                         steps: int = 20, batch_size: int = 20) -> tuple[Tensor, float]:
    """Signed integrated gradients per token, and the completeness gap.

    Args:
        input_ids: ``(1, T)``; baseline: ``(1, T)`` ids of the reference input.
        steps: points of the midpoint rule on the path from baseline to input.

    Returns:
        ``(attributions (T,), gap)`` where ``gap = sum(attributions) - (log p(target | input)
        - log p(target | baseline))``; it shrinks as ``steps`` grows.
    """
    word_embeddings = model.bert.embeddings.word_embeddings
    with torch.no_grad():
        x, x0 = word_embeddings(input_ids), word_embeddings(baseline)  # (1, T, H) each
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps  # (steps,)
    gradients = []
    for chunk in alphas.split(batch_size):
        path = (x0 + chunk[:, None, None] * (x - x0)).requires_grad_()  # (n, T, H)
        score = log_probability(model, input_ids, path, target).sum()
        gradients.append(torch.autograd.grad(score, path)[0])
    mean_gradient = torch.cat(gradients).mean(0, keepdim=True)  # (1, T, H)
    attributions = ((x - x0) * mean_gradient).sum(-1)[0].detach()  # (T,)
    with torch.no_grad():
        ends = log_probability(model, input_ids, torch.cat([x, x0]), target)  # (2,)
    return attributions, float(attributions.sum() - (ends[0] - ends[1]))


def sum_by_word(tokens: Sequence[str], scores: Tensor) -> tuple[list[str], Tensor]:
    """Add up token scores ``(T,)`` per word, without special tokens: ``(words, (W,))``."""
    ids = word_ids(tokens)
    words: dict[int, str] = {}
    totals: dict[int, float] = {}
    for token, word, score in zip(tokens, ids, scores.tolist()):
        if token in SPECIAL_TOKENS:
            continue
        words[word] = words.get(word, "") + (token[2:] if token.startswith("##") else token)
        totals[word] = totals.get(word, 0.0) + score
    return list(words.values()), torch.tensor(list(totals.values()))


@dataclass
class ReviewExplanation:
    """One review read by a classifier: its prediction and word scores by every method."""

    input_ids: Tensor  # (1, T)
    tokens: list[str]
    words: list[str]
    target: int  # the predicted class
    probability: float  # of the predicted class
    word_scores: dict[str, Tensor] = field(default_factory=dict)  # method -> (W,), higher = more important
    ig_gap: float = 0.0


METHODS = ("last-layer attention", "attention rollout", "gradient x input", "integrated gradients")


def explain_review(model: nn.Module, tokenizer: Any, text: str, max_length: int = 128,
                   steps: int = 20) -> ReviewExplanation:
    """Predict ``text`` (cut to ``max_length`` tokens) and score its words by the four ``METHODS``."""
    model.eval()
    input_ids = torch.tensor([tokenizer(text, truncation=True, max_length=max_length)["input_ids"]])  # (1, T)
    tokens = tokenizer.convert_ids_to_tokens(input_ids[0].tolist())
    with torch.no_grad():
        out = model(input_ids, output_attentions=True)
    probabilities = out.logits.float().softmax(-1)[0]  # (C,)
    target = int(probabilities.argmax())
    token_scores = {
        "last-layer attention": out.attentions[-1][0, :, 0, :].float().mean(0),  # (T,) row of [CLS]
        "attention rollout": attention_rollout(out.attentions)[0],
        "gradient x input": gradient_x_input(model, input_ids, target),
    }
    baseline = baseline_ids(input_ids, [tokenizer.cls_token_id, tokenizer.sep_token_id], tokenizer.pad_token_id)
    attributions, gap = integrated_gradients(model, input_ids, target, baseline, steps)
    token_scores["integrated gradients"] = attributions.abs()
    words = sum_by_word(tokens, token_scores["attention rollout"])[0]
    scores = {method: sum_by_word(tokens, s)[1] for method, s in token_scores.items()}
    return ReviewExplanation(input_ids, tokens, words, target, float(probabilities[target]), scores, gap)


def delete_words(input_ids: Tensor, tokens: Sequence[str], words: Sequence[int]) -> Tensor:
    """``input_ids (1, T)`` without the pieces of the given word indices (specials not counted)."""
    keep, word = [], -1
    for position, token in enumerate(tokens):
        if token in SPECIAL_TOKENS:
            keep.append(position)
            continue
        if not token.startswith("##"):
            word += 1
        if word not in set(words):
            keep.append(position)
    return input_ids[:, keep]


def deletion_drop(model: nn.Module, explanation: ReviewExplanation, ranking: Sequence[int],
                  ks: Sequence[int]) -> list[float]:
    """How much p(predicted class) falls when the first ``k`` words of ``ranking`` are deleted."""
    drops = []
    for k in ks:
        ids = delete_words(explanation.input_ids, explanation.tokens, ranking[:k])
        with torch.no_grad():
            p = model(ids).logits.float().softmax(-1)[0, explanation.target]
        drops.append(explanation.probability - float(p))
    return drops


def deletion_experiment(model: nn.Module, explanations: Sequence[ReviewExplanation], ks: Sequence[int] = (1, 3, 5),
                        n_random: int = 3, seed: int = 0) -> dict[str, Tensor]:
    """Mean drop of p(predicted class) per method and k: ``method -> (len(ks),)``.

    ``"random"`` deletes random words (``n_random`` draws per review, seeded).
    """
    rng = random.Random(seed)
    drops: dict[str, list[list[float]]] = {method: [] for method in (*METHODS, "random")}
    for explanation in explanations:
        for method in METHODS:
            ranking = explanation.word_scores[method].argsort(descending=True, stable=True).tolist()
            drops[method].append(deletion_drop(model, explanation, ranking, ks))
        for _ in range(n_random):
            ranking = rng.sample(range(len(explanation.words)), len(explanation.words))
            drops["random"].append(deletion_drop(model, explanation, ranking, ks))
    return {method: torch.tensor(rows).mean(0) for method, rows in drops.items()}


def rank_agreement(explanations: Sequence[ReviewExplanation], method_a: str, method_b: str) -> Tensor:
    """Spearman rank correlation of two methods' word scores, one value per review: ``(N,)``."""
    from scipy.stats import spearmanr

    return torch.tensor([float(spearmanr(e.word_scores[method_a], e.word_scores[method_b]).statistic)
                         for e in explanations])

"""What each attention head looks at (chapter 6): statistics for every layer x head.

For every query token, a head splits one unit of attention over the keys. Averaged over
the real tokens of many sentences, a few shares describe a head (after Clark et al. 2019,
"What Does BERT Look At?"):

- ``[CLS]``, ``[SEP]``: attention to the special tokens (a "no-op" place to park it);
- ``punctuation``: to tokens made only of punctuation;
- ``previous``, ``next``: to the token just before / after the query;
- ``same word``: to the other word pieces of the query's own word (queries in words of
  two or more pieces only; 0 when no query is in such a word);
- ``entropy``: ``-sum_j p_j log p_j`` of the query's row, in nats (0 = one key takes
  everything, ``log T`` = uniform over ``T`` keys).

Shapes: ``L`` layers, ``nh`` heads, ``B`` sentences, ``T`` tokens. Every function works
on the attention tuple any BERT returns with ``output_attentions=True`` (``bertedu``'s
``BertModel`` or ``transformers``' loaded with ``attn_implementation="eager"``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from bertedu.tokenization import is_punctuation

STATISTICS = ("[CLS]", "[SEP]", "punctuation", "previous", "next", "same word", "entropy")


def word_ids(tokens: Sequence[str]) -> list[int]:
    """The word each token belongs to: a ``##`` piece continues the word before it."""
    ids: list[int] = []
    for token in tokens:
        if token.startswith("##") and ids:
            ids.append(ids[-1])
        else:
            ids.append(ids[-1] + 1 if ids else 0)
    return ids


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentence_pairs(texts: Sequence[str], min_words: int = 4) -> list[tuple[str, str]]:
    """The first two sentences of each text that has two of at least ``min_words`` words.

    A pair reads ``[CLS] A [SEP] B [SEP]``, the input BERT was pre-trained on (Clark et al.
    used pairs of consecutive paragraphs).
    """
    pairs = []
    for text in texts:
        sentences = [s.strip() for s in _SENTENCE_END.split(text.replace("\n", " "))]
        sentences = [s for s in sentences if len(s.split()) >= min_words]
        if len(sentences) >= 2:
            pairs.append((sentences[0], sentences[1]))
    return pairs


def key_masks(tokens: Sequence[str]) -> dict[str, Tensor]:
    """``(T,)`` 0/1 masks over the keys: which tokens are ``[CLS]``, ``[SEP]``, punctuation."""
    return {
        "[CLS]": torch.tensor([t == "[CLS]" for t in tokens], dtype=torch.float32),
        "[SEP]": torch.tensor([t == "[SEP]" for t in tokens], dtype=torch.float32),
        "punctuation": torch.tensor([all(is_punctuation(c) for c in t) for t in tokens], dtype=torch.float32),
    }


def same_word_mask(tokens: Sequence[str]) -> Tensor:
    """``(T, T)``: 1 where key ``j`` is another piece of query ``i``'s word."""
    ids = torch.tensor(word_ids(tokens))
    same = ids[:, None] == ids[None, :]  # (T, T)
    return (same & ~torch.eye(len(tokens), dtype=torch.bool)).float()


def row_entropy(probs: Tensor) -> Tensor:
    """Entropy in nats of each row of ``probs (..., T)`` -> ``(...)``; ``0 log 0 = 0``."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)


def _pad(rows: Sequence[Tensor], T: int) -> Tensor:
    """Stack ``(t,)`` or ``(t, t)`` tensors into ``(B, T)`` / ``(B, T, T)``, zero-padded."""
    out = torch.zeros(len(rows), *([T] * rows[0].dim()))
    for b, row in enumerate(rows):
        out[(b, *[slice(0, n) for n in row.shape])] = row
    return out


def batch_statistics(probs: Tensor, tokens: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
    """Statistics of a padded batch: sums over its real queries, and how many queries each used.

    Args:
        probs: ``(B, L, nh, T, T)`` attention probabilities (padded keys have probability 0).
        tokens: the real tokens of each sentence (``len(tokens[b]) <= T``).

    Returns:
        ``(sums (S, L, nh), counts (S,))`` for the ``S`` names in ``STATISTICS``;
        ``sums / counts`` is the mean over queries. Sums let many batches be pooled.
    """
    probs = probs.float()
    T = probs.shape[-1]
    lengths = torch.tensor([len(t) for t in tokens])  # (B,)
    query = (torch.arange(T)[None, :] < lengths[:, None]).float()  # (B, T) real queries
    masks = [key_masks(t) for t in tokens]
    same = _pad([same_word_mask(t) for t in tokens], T)  # (B, T, T)
    pieces = (same.sum(-1) > 0).float()  # (B, T) queries in a word of several pieces
    sums = []
    for name in ("[CLS]", "[SEP]", "punctuation"):
        keys = _pad([m[name] for m in masks], T)  # (B, T)
        sums.append(torch.einsum("blhqk,bk,bq->lh", probs, keys, query))
    sums.append(torch.einsum("blhq,bq->lh", probs.diagonal(-1, -2, -1), query[:, 1:]))  # i -> i - 1
    sums.append(torch.einsum("blhq,bq->lh", probs.diagonal(1, -2, -1), query[:, 1:]))  # i -> i + 1 (i + 1 real)
    sums.append(torch.einsum("blhqk,bqk->lh", probs, same))
    sums.append(torch.einsum("blhq,bq->lh", row_entropy(probs), query))
    n = float(query.sum())
    counts = torch.tensor([n, n, n, n - len(tokens), n - len(tokens), float(pieces.sum()), n])
    return torch.stack(sums), counts  # (S, L, nh), (S,)


@dataclass
class HeadStatistics:
    """Mean statistics per layer x head over ``n_sentences`` sentences (``n_tokens`` queries).

    ``values[name]`` is an ``(L, nh)`` tensor for every name in ``STATISTICS``.
    """

    values: dict[str, Tensor]
    n_sentences: int
    n_tokens: int

    def __getitem__(self, name: str) -> Tensor:
        return self.values[name]

    def best_head(self, name: str, lowest: bool = False) -> tuple[int, int, float]:
        """``(layer, head, value)`` of the head with the highest (or lowest) ``name``."""
        grid = self.values[name]
        index = int(grid.argmin() if lowest else grid.argmax())
        layer, head = divmod(index, grid.shape[1])
        return layer, head, float(grid[layer, head])

    def layer_mean(self, name: str) -> Tensor:
        """``(L,)``: the statistic averaged over the heads of each layer."""
        return self.values[name].mean(-1)


def pool_statistics(batches: Sequence[tuple[Tensor, Tensor]], n_sentences: int) -> HeadStatistics:
    """Average ``batch_statistics`` results: each query counts once."""
    sums = torch.stack([s for s, _ in batches]).sum(0)  # (S, L, nh)
    counts = torch.stack([c for _, c in batches]).sum(0)  # (S,)
    means = sums / counts.clamp_min(1)[:, None, None]
    return HeadStatistics(dict(zip(STATISTICS, means)), n_sentences, int(counts[0]))


def attention_statistics(attentions: Sequence[Tensor], tokens: Sequence[Sequence[str]]) -> HeadStatistics:
    """Statistics of one padded batch.

    Args:
        attentions: ``L`` tensors ``(B, nh, T, T)`` (what ``output_attentions=True`` gives).
        tokens: the real (unpadded) tokens of each sentence.
    """
    probs = torch.stack([layer.detach().cpu() for layer in attentions], dim=1)  # (B, L, nh, T, T)
    return pool_statistics([batch_statistics(probs, tokens)], len(tokens))


def encode_for_statistics(tokenizer: Any, texts: Sequence[str | tuple[str, str]],
                          max_length: int = 128) -> list[dict[str, list[int]]]:
    """Tokenize strings or sentence pairs (truncated to ``max_length``), unpadded."""
    encoded = []
    for text in texts:
        first, second = (text if isinstance(text, tuple) else (text, None))
        row = tokenizer(first, second, truncation=True, max_length=max_length)
        encoded.append({name: list(row[name]) for name in ("input_ids", "token_type_ids")})
    return encoded


def collect_head_statistics(model: Any, tokenizer: Any, texts: Sequence[str | tuple[str, str]],
                            max_length: int = 128, batch_size: int = 32) -> HeadStatistics:
    """Run ``texts`` (strings or sentence pairs) through ``model`` and pool the statistics.

    ``model`` is any BERT returning ``.attentions`` with ``output_attentions=True``.
    Sentences are batched by length, so little time goes to padding.
    """
    encoded = sorted(encode_for_statistics(tokenizer, texts, max_length), key=lambda e: len(e["input_ids"]))
    batches = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        T = len(chunk[-1]["input_ids"])
        inputs = {name: torch.tensor([e[name] + [0] * (T - len(e[name])) for e in chunk])
                  for name in ("input_ids", "token_type_ids")}
        inputs["attention_mask"] = torch.tensor([[1] * len(e["input_ids"]) + [0] * (T - len(e["input_ids"]))
                                                 for e in chunk])
        with torch.no_grad():
            attentions = model(**inputs, output_attentions=True).attentions
        tokens = [tokenizer.convert_ids_to_tokens(e["input_ids"]) for e in chunk]
        probs = torch.stack(attentions, dim=1)  # (B, L, nh, T, T)
        batches.append(batch_statistics(probs, tokens))
    return pool_statistics(batches, len(encoded))

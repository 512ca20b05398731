"""BERT's pre-training data (chapter 4): sentences -> segment pairs -> masked training examples.

    review text ──split_sentences──> sentences ──tokenizer──> token ids per sentence
        ──make_pairs──> (segment A, segment B, is B the real continuation?)   [NSP]
        ──PretrainingDataset[i]──> [CLS] A [SEP] B [SEP], 15% of tokens corrupted [MLM]

The pairing follows Google's ``create_pretraining_data.py``: fill a chunk of consecutive
sentences up to the target length, cut it in two at a random sentence boundary, and half
the time replace the second part by text from another document. As in the paper, a
"sentence" is any span of contiguous text. Masking is *dynamic* (as in RoBERTa): each
epoch draws fresh masks, reproducibly, from (seed, epoch, example index).
"""
from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

IGNORE_INDEX = -100  # label of tokens the MLM loss skips (PyTorch cross_entropy's default)
IS_NEXT, NOT_NEXT = 0, 1  # next_sentence_label values, as in the paper's code and transformers


# ---------------------------------------------------------------------------------------
# Masked language modelling: which tokens to corrupt, and how
# ---------------------------------------------------------------------------------------


def mask_tokens(
    input_ids: Tensor,
    *,
    vocab_size: int,
    mask_token_id: int,
    special_token_ids: Iterable[int],
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
    continuation_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupt tokens for masked language modelling, as in BERT.

    Select ``mlm_probability`` of the tokens that are not special (``[CLS]``, ``[SEP]``,
    ``[PAD]``: pass every id that must never be masked, padding included). Of the
    selected tokens 80% become ``[MASK]``, 10% a random non-special token and 10% stay
    unchanged, so the model cannot tell which visible tokens it will be asked about.

    Args:
        input_ids: ``(B, T)`` (or any shape) integer token ids; not modified.
        continuation_mask: optional bool tensor shaped like ``input_ids``, True where a
            token continues the previous word (WordPiece ``##``). When given, whole words
            are selected together (whole-word masking); the 80/10/10 choice stays per token.

    Returns:
        ``(masked_input_ids, labels)``, both shaped like ``input_ids``. ``labels`` holds the
        original id where a token was selected and -100 everywhere else.
    """
    if input_ids.dtype.is_floating_point or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must hold integer token ids; got dtype {input_ids.dtype}.")
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mlm_probability must lie in (0, 1); got {mlm_probability}.")
    if continuation_mask is not None and continuation_mask.shape != input_ids.shape:
        raise ValueError(
            f"continuation_mask has shape {tuple(continuation_mask.shape)}, input_ids "
            f"{tuple(input_ids.shape)}: give one flag per token."
        )
    special_ids = torch.tensor(sorted(set(special_token_ids)), dtype=input_ids.dtype)
    is_special = torch.isin(input_ids, special_ids.to(input_ids.device))

    # 1. Choose the positions to predict: a coin per token (or per word).
    coin = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    if continuation_mask is not None:
        # Every token reads the coin of the token that starts its word.
        positions = torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)
        word_start = torch.where(continuation_mask, 0, positions).cummax(dim=-1).values
        coin = coin.gather(-1, word_start)
    selected = (coin < mlm_probability) & ~is_special

    # 2. Decide how to corrupt each selected token: 80% [MASK], 10% random, 10% kept.
    how = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    to_mask = selected & (how < 0.8)
    to_random = selected & (how >= 0.8) & (how < 0.9)
    candidates = torch.ones(vocab_size, dtype=torch.bool)
    candidates[special_ids[special_ids < vocab_size]] = False
    candidates = candidates.nonzero().squeeze(1)  # the ids a random replacement may take
    pick = torch.randint(len(candidates), input_ids.shape, generator=generator)
    random_ids = candidates[pick].to(input_ids.device, input_ids.dtype)

    masked = input_ids.clone()  # never modify the caller's tensor
    masked[to_mask] = mask_token_id
    masked[to_random] = random_ids[to_random]
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


# ---------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------

# End punctuation (plus closing quotes/brackets), then space, then what can start a sentence.
_BOUNDARY = re.compile(r"""([.!?]+["')\]]*)\s+(?=["'(\[]?[A-Z0-9])""")
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "st.", "jr.", "sr.", "vs.", "prof.", "mt.", "no.", "e.g.", "i.e."}


def split_sentences(text: str) -> list[str]:
    """Split a review into sentences: at line breaks, and after ``. ! ?`` when the next
    word starts with a capital letter, digit or quote. Titles such as "Mr." and initials
    such as "J." do not end a sentence. Good enough for pairing; not a linguist's parser.
    """
    sentences = []
    for paragraph in text.splitlines():
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            last_word = paragraph[start:match.end(1)].rsplit(maxsplit=1)[-1].lower()
            if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", last_word):
                continue
            sentences.append(paragraph[start:match.end(1)].strip())
            start = match.end()
        sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


# ---------------------------------------------------------------------------------------
# Next-sentence prediction: pairs of segments
# ---------------------------------------------------------------------------------------


@dataclass
class SegmentPair:
    """One NSP example before masking: token ids of segments A and B (no special tokens)."""

    tokens_a: list[int]
    tokens_b: list[int]
    is_random_next: bool  # True: B comes from another document (label NotNext)


def make_pairs(
    documents: Sequence[Sequence[list[int]]],
    *,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    seed: int = 0,
) -> list[SegmentPair]:
    """Pack every document's sentences into segment pairs, as BERT does.

    ``documents[d][s]`` holds the token ids of sentence ``s`` of document ``d``. Each pair
    fits ``[CLS] A [SEP] B [SEP]`` into ``max_seq_length`` tokens. Exactly half the pairs
    (in expectation) take B from a different document.
    """
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for two segments; use >= 5.")
    rng = random.Random(seed)
    pairs: list[SegmentPair] = []
    for index in range(len(documents)):
        pairs.extend(_pairs_from_document(documents, index, max_seq_length, short_seq_prob, rng))
    return pairs


def _pairs_from_document(
    documents: Sequence[Sequence[list[int]]], index: int, max_seq_length: int,
    short_seq_prob: float, rng: random.Random,
) -> list[SegmentPair]:
    document = [s for s in documents[index] if s]
    max_tokens = max_seq_length - 3  # room for [CLS], [SEP], [SEP]
    # Sometimes aim shorter, so the model also sees the short inputs of later tasks.
    target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
    pairs, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target:
            is_random_next = len(documents) > 1 and rng.random() < 0.5
            if not is_random_next and len(chunk) == 1:
                chunk = _split_span(chunk[0], rng)  # a true continuation needs two spans
            if len(chunk) >= 2 or is_random_next:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
                if is_random_next:
                    tokens_b = _random_segment(documents, index, target - len(tokens_a), rng)
                    # The sentences after A were not used: put them back for the next chunk.
                    i -= len(chunk) - a_end
                else:
                    tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
                _truncate_pair(tokens_a, tokens_b, max_tokens, rng)
                if tokens_a and tokens_b:
                    pairs.append(SegmentPair(tokens_a, tokens_b, is_random_next))
            chunk, chunk_length = [], 0
        i += 1
    return pairs


def _split_span(tokens: list[int], rng: random.Random) -> list[list[int]]:
    """Cut one long span in two at a random point (one piece if it is a single token)."""
    if len(tokens) < 2:
        return [tokens]
    cut = rng.randint(1, len(tokens) - 1)
    return [tokens[:cut], tokens[cut:]]


def _random_segment(documents: Sequence[Sequence[list[int]]], index: int, length: int,
                    rng: random.Random) -> list[int]:
    """At least ``length`` tokens of consecutive sentences from a random other document."""
    other = index
    while other == index:
        other = rng.randrange(len(documents))
    sentences = [s for s in documents[other] if s]
    if not sentences:
        return []
    tokens: list[int] = []
    for sentence in sentences[rng.randrange(len(sentences)):]:
        tokens.extend(sentence)
        if len(tokens) >= max(1, length):
            break
    return tokens


def _truncate_pair(tokens_a: list[int], tokens_b: list[int], max_tokens: int, rng: random.Random) -> None:
    """Trim the longer segment, from its front or back at random, until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        del longer[0 if rng.random() < 0.5 else -1]


# ---------------------------------------------------------------------------------------
# The dataset the training loop reads
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PretrainingVocab:
    """The token ids pre-training needs, and which tokens continue a word (``##``)."""

    vocab_size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: tuple[int, ...]
    continuation: Tensor | None = None  # (V,) bool: True for "##" word pieces

    @classmethod
    def from_tokenizer(cls, tokenizer) -> PretrainingVocab:
        """Read the ids from a ``transformers`` BERT tokenizer."""
        tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        return cls(
            vocab_size=len(tokenizer),
            pad_id=tokenizer.pad_token_id, cls_id=tokenizer.cls_token_id,
            sep_id=tokenizer.sep_token_id, mask_id=tokenizer.mask_token_id,
            special_ids=tuple(sorted(tokenizer.all_special_ids)),
            continuation=torch.tensor([token.startswith("##") for token in tokens]),
        )


def encode_pair(pair: SegmentPair, vocab: PretrainingVocab, max_seq_length: int) -> dict[str, Tensor]:
    """``[CLS] A [SEP] B [SEP]`` padded to ``max_seq_length``, with segment ids 0 then 1."""
    return {key: values[0] for key, values in encode_pairs([pair], vocab, max_seq_length).items()}


def encode_pairs(pairs: Sequence[SegmentPair], vocab: PretrainingVocab, max_seq_length: int) -> dict[str, Tensor]:
    """Every pair as ``[CLS] A [SEP] B [SEP]``, padded: four tensors built at once.

    Returns ``input_ids``, ``token_type_ids``, ``attention_mask`` ``(P, T)`` and
    ``next_sentence_label`` ``(P,)``. The rows are assembled as Python lists (one list per
    pair, no loop per token) and turned into tensors once; the segment ids and the
    attention mask come from the two lengths per pair by comparison with ``arange(T)``.
    """
    rows, length_a, length = [], [], []
    for pair in pairs:
        ids = [vocab.cls_id, *pair.tokens_a, vocab.sep_id, *pair.tokens_b, vocab.sep_id]
        if len(ids) > max_seq_length:
            raise ValueError(f"The pair has {len(ids)} tokens with specials; max_seq_length is {max_seq_length}.")
        rows.append(ids + [vocab.pad_id] * (max_seq_length - len(ids)))
        length_a.append(len(pair.tokens_a) + 2)  # [CLS] A [SEP] belong to segment 0
        length.append(len(ids))
    positions = torch.arange(max_seq_length)  # (T,)
    n_a, n = torch.tensor(length_a)[:, None], torch.tensor(length)[:, None]  # (P, 1)
    return {
        "input_ids": torch.tensor(rows, dtype=torch.long).view(len(rows), max_seq_length),
        "token_type_ids": ((positions >= n_a) & (positions < n)).long(),  # (P, T)
        "attention_mask": (positions < n).long(),  # (P, T)
        "next_sentence_label": torch.tensor([NOT_NEXT if p.is_random_next else IS_NEXT for p in pairs],
                                            dtype=torch.long),
    }


class PretrainingDataset(torch.utils.data.Dataset):
    """Segment pairs, encoded once; each epoch masks all of them afresh, in one call.

    Each item is a dict of ``input_ids``, ``token_type_ids``, ``attention_mask``,
    ``labels`` (all ``(T,)``) and ``next_sentence_label`` (a scalar; left out with
    ``nsp=False``, for MLM-only training): the keyword arguments of
    ``BertForPreTraining.forward``.

    ``set_epoch(e)`` draws the masks of every pair for epoch ``e`` at once (one vectorised
    ``mask_tokens`` over the ``(P, T)`` table, on the device the table lives on), so
    ``dataset[i]`` is only an index into ready tensors. The masks depend only on
    (seed, epoch): the same in every process and after a resume.
    """

    def __init__(self, pairs: Sequence[SegmentPair], vocab: PretrainingVocab, *, max_seq_length: int = 128,
                 mlm_probability: float = 0.15, whole_word: bool = False, seed: int = 0, nsp: bool = True) -> None:
        if whole_word and vocab.continuation is None:
            raise ValueError("whole_word=True needs vocab.continuation (build it with PretrainingVocab.from_tokenizer).")
        self.vocab, self.mlm_probability, self.whole_word, self.seed = vocab, mlm_probability, whole_word, seed
        self.max_seq_length, self.nsp = max_seq_length, nsp
        self.tensors = encode_pairs(pairs, vocab, max_seq_length) if len(pairs) else {}
        self.epoch = -1
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.tensors["input_ids"]) if self.tensors else 0

    def to(self, device: torch.device | str) -> PretrainingDataset:
        """Move the pairs (and the masking) to ``device``; returns ``self``."""
        self.tensors = {key: value.to(device) for key, value in self.tensors.items()}
        self.epoch, epoch = -1, self.epoch
        self.set_epoch(epoch)
        return self

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop: a new epoch draws new masks for every pair."""
        if epoch == self.epoch or not self.tensors:
            self.epoch = epoch
            return
        self.epoch = epoch
        input_ids = self.tensors["input_ids"]  # (P, T)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        continuation = self.vocab.continuation.to(input_ids.device)[input_ids] if self.whole_word else None
        self.masked_input_ids, self.labels = mask_tokens(
            input_ids, vocab_size=self.vocab.vocab_size, mask_token_id=self.vocab.mask_id,
            special_token_ids=self.vocab.special_ids, mlm_probability=self.mlm_probability,
            generator=generator, continuation_mask=continuation,
        )  # (P, T) each

    def batch(self, index: int | slice | Tensor) -> dict[str, Tensor]:
        """The items at ``index`` (an int, a slice or a tensor of indices), masked for this epoch."""
        item = {key: values[index] for key, values in self.tensors.items()
                if self.nsp or key != "next_sentence_label"}
        item["input_ids"], item["labels"] = self.masked_input_ids[index], self.labels[index]
        return item

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.batch(index)

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        """Stack items into a batch (what ``default_collate`` does, without its checks)."""
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}

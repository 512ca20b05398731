"""Chapter 5: fine-tune BERT for IMDb sentiment, use it, and look at what it learned.

The pipeline, from raw review to a trained classifier::

    text ─> word pieces ─> keep head + tail (Sun et al., 2019) ─> [CLS] ... [SEP]
         ─> batches of similar length (length bucketing) ─> pad each batch to its longest
         ─> BertForSequenceClassification ─> cross-entropy ─> bertedu.training.train

- **Head + tail truncation.** BERT reads at most 512 positions and a CPU budget allows
  fewer. A review says what it is about at the start and gives its verdict at the end, so
  we keep the first ``head_tokens`` and the last ones, dropping the middle.
- **Dynamic padding + length bucketing.** A batch is padded to *its* longest review,
  not to ``max_length``; grouping reviews of similar length into the same batch makes
  that padding nearly vanish, so no compute goes to ``[PAD]``.
- **Training** reuses chapter 4's loop (``bertedu.training.train``): AdamW, warm-up then
  linear decay, gradient clipping, bf16 on a GPU, an evaluation each epoch, the best
  epoch's weights kept.

Using a fine-tuned model: ``SentimentClassifier`` (load a folder, ``predict`` texts,
``explain`` one text with the attention from ``[CLS]``), ``sentiment_playground``
(a widget), and the command line::

    bertedu finetune [--quick | --full] [--checkpoint default|small|DIR] [--output DIR]
    bertedu predict "A wonderful film." "Two hours I will never get back."
    bertedu predict --file reviews.txt --json        # one review per line; "-" is stdin
"""
from __future__ import annotations

import argparse
import html
import json
import math
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bertedu.attention import MultiHeadSelfAttention
from bertedu.classification import (
    BertForSequenceClassification,
    ClassifierInfo,
    classification_scores,
    load_classifier,
    save_classifier,
)
from bertedu.files import write_json
from bertedu.model import BertConfig
from bertedu.paths import checkpoints_dir
from bertedu.settings import autocast, mode_settings, pick, select_device
from bertedu.training import TrainingConfig, TrainingHistory, train

MODEL_NAME = "ch5-sentiment"  # checkpoints_dir(MODEL_NAME): where `bertedu finetune` saves
RUN_NAME = "ch5-finetune-run"  # its resumable training checkpoints

# ---------------------------------------------------------------------------------------
# 1. Reading a review: word pieces, head + tail truncation, special tokens
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Truncation:
    """How a review becomes at most ``max_length`` ids: ``[CLS]`` head ... tail ``[SEP]``.

    ``head_tokens`` word pieces from the start and ``tail_tokens`` from the end are kept
    when the review is too long; a review that fits is kept whole. Head-only truncation
    (BERT's default) is ``head_tokens = max_length - 2``.
    """

    max_length: int = 256  # including [CLS] and [SEP]
    head_tokens: int = 64

    def __post_init__(self) -> None:
        if self.max_length < 3:
            raise ValueError(f"max_length={self.max_length}: need room for [CLS], [SEP] and one token.")
        if not 0 <= self.head_tokens <= self.body:
            raise ValueError(f"head_tokens={self.head_tokens} must lie in [0, max_length - 2 = {self.body}].")

    @property
    def body(self) -> int:
        """Word pieces that fit between ``[CLS]`` and ``[SEP]``."""
        return self.max_length - 2

    @property
    def tail_tokens(self) -> int:
        return self.body - self.head_tokens

    @classmethod
    def head_only(cls, max_length: int = 256) -> Truncation:
        return cls(max_length, max_length - 2)

    def fit(self, max_position_embeddings: int) -> Truncation:
        """The same head share for a model that reads at most ``max_position_embeddings``."""
        if self.max_length <= max_position_embeddings:
            return self
        return Truncation(max_position_embeddings, round(self.head_tokens * (max_position_embeddings - 2) / self.body))

    def describe(self) -> str:
        if self.tail_tokens == 0:
            return f"head only ({self.body} tokens)"
        return f"head {self.head_tokens} + tail {self.tail_tokens} tokens"


def truncate_head_tail(pieces: Sequence[int], body: int, head_tokens: int) -> list[int]:
    """Keep the first ``head_tokens`` and the last ``body - head_tokens`` items of a long list.

    >>> truncate_head_tail(list(range(10)), body=5, head_tokens=2)
    [0, 1, 7, 8, 9]
    """
    if len(pieces) <= body:
        return list(pieces)
    tail_tokens = body - head_tokens
    return list(pieces[:head_tokens]) + (list(pieces[len(pieces) - tail_tokens:]) if tail_tokens > 0 else [])


class TextError(ValueError):
    """A text that cannot be classified; ``index`` says which one (0-based)."""

    def __init__(self, index: int, problem: str) -> None:
        super().__init__(f"Text {index} {problem}")
        self.index = index
        self.problem = problem


def check_texts(texts: Sequence[str]) -> None:
    """Raise a ``TextError`` naming the first text that is not a non-empty string."""
    if isinstance(texts, str):
        raise ValueError("Expected a list of texts, got one string: wrap it as [text].")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TextError(i, f"is a {type(text).__name__}, not a str.")
        if not text.strip():
            raise TextError(i, "is empty or only whitespace: there is nothing to classify.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates, e.g. undecodable bytes read with errors="surrogateescape"
            raise TextError(i, "is not valid Unicode text (it holds lone surrogates, typically from bytes "
                               "that were not UTF-8): decode it with the right encoding first.") from None


def word_pieces(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """The word-piece ids of each text, without special tokens and *untruncated*.

    Truncation comes after, so that it can keep the tail. The fast tokenizer does the
    whole list in one call (Rust, several threads).
    """
    check_texts(texts)
    encoded = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)
    pieces = encoded["input_ids"]
    for i, ids in enumerate(pieces):
        if not ids:  # e.g. only control or zero-width characters, which BERT's cleaner drops
            raise TextError(i, f"has no tokens after cleaning ({texts[i][:40]!r}): there is nothing to classify.")
    return pieces


def encode_texts(tokenizer: Any, texts: Sequence[str], truncation: Truncation) -> list[list[int]]:
    """``[CLS]`` + truncated word pieces + ``[SEP]`` for each text (lists of different lengths)."""
    return [
        [tokenizer.cls_token_id, *truncate_head_tail(ids, truncation.body, truncation.head_tokens), tokenizer.sep_token_id]
        for ids in word_pieces(tokenizer, texts)
    ]


@dataclass
class Example:
    """One encoded review: its ids (``[CLS]`` ... ``[SEP]``) and its label (None when unknown)."""

    input_ids: list[int]
    label: int | None = None


def encode_reviews(tokenizer: Any, texts: Sequence[str], labels: Sequence[int] | None,
                   truncation: Truncation) -> list[Example]:
    """Texts (and labels) -> ``Example`` list, in the same order."""
    ids = encode_texts(tokenizer, texts, truncation)
    if labels is not None and len(labels) != len(ids):
        raise ValueError(f"{len(ids)} texts but {len(labels)} labels.")
    return [Example(x, None if labels is None else int(labels[i])) for i, x in enumerate(ids)]


# ---------------------------------------------------------------------------------------
# 2. Batches: dynamic padding and length bucketing
# ---------------------------------------------------------------------------------------


def pad_collate(examples: Sequence[Example], pad_id: int = 0) -> dict[str, Tensor]:
    """Pad a batch to *its* longest example (dynamic padding).

    Returns ``input_ids (B, T)``, ``attention_mask (B, T)`` (1 = real token) and, when
    every example has one, ``labels (B,)``; ``T`` is the batch's longest length.
    """
    if not examples:
        raise ValueError("Cannot collate an empty batch.")
    T = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), T), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((len(examples), T), dtype=torch.long)  # (B, T)
    for row, example in enumerate(examples):
        input_ids[row, :len(example.input_ids)] = torch.tensor(example.input_ids)
        attention_mask[row, :len(example.input_ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if all(e.label is not None for e in examples):
        batch["labels"] = torch.tensor([e.label for e in examples], dtype=torch.long)  # (B,)
    return batch


def padding_fraction(batches: Sequence[Sequence[Example]]) -> float:
    """The share of positions in padded batches that are ``[PAD]``: wasted compute."""
    real = sum(len(e.input_ids) for batch in batches for e in batch)
    padded = sum(len(batch) * max(len(e.input_ids) for e in batch) for batch in batches)
    return 1 - real / padded


class LengthBucketedBatches(Sequence[list[Example]]):
    """Training batches of similar-length examples, regrouped at every epoch.

    Each epoch: shuffle the examples, cut them into pools of ``pool_batches`` batches,
    sort each pool by length and cut it into batches. Batches stay random (the pools
    are) but hold reviews of similar length, so padding them costs almost nothing.

    It is a sequence of *batches*: give it to ``bertedu.training.train`` with
    ``batch_size=1`` and ``collate_fn=BatchCollator(pad_id)``; the loop shuffles the
    order of the batches and calls ``set_epoch`` at every new epoch.
    """

    def __init__(self, examples: Sequence[Example], batch_size: int, seed: int = 0, pool_batches: int = 50) -> None:
        if batch_size < 1 or not examples:
            raise ValueError(f"Need examples and batch_size >= 1 (got {len(examples)} examples, batch_size={batch_size}).")
        self.examples = list(examples)
        self.batch_size = batch_size
        self.seed = seed
        self.pool_size = batch_size * pool_batches  # a multiple of batch_size: the batch count never changes
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        order = list(range(len(self.examples)))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        self.batches: list[list[int]] = []
        for start in range(0, len(order), self.pool_size):
            pool = sorted(order[start:start + self.pool_size], key=lambda i: len(self.examples[i].input_ids))
            self.batches += [pool[i:i + self.batch_size] for i in range(0, len(pool), self.batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> list[Example]:  # type: ignore[override]
        return [self.examples[i] for i in self.batches[index]]


class BatchCollator:
    """``collate_fn`` for ``LengthBucketedBatches``: the loop hands over ``[batch]``."""

    def __init__(self, pad_id: int = 0) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[list[Example]]) -> dict[str, Tensor]:
        return pad_collate([example for batch in items for example in batch], self.pad_id)


def sorted_batches(examples: Sequence[Example], batch_size: int) -> Iterator[tuple[list[int], list[Example]]]:
    """For inference: (indices, batch) pairs in order of length, so batches barely pad."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for start in range(0, len(order), batch_size):
        indices = order[start:start + batch_size]
        yield indices, [examples[i] for i in indices]


# ---------------------------------------------------------------------------------------
# 3. Predictions, frozen features and scores
# ---------------------------------------------------------------------------------------


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict_proba(model: nn.Module, examples: Sequence[Example], batch_size: int = 64, pad_id: int = 0) -> np.ndarray:
    """``(N, C)`` class probabilities in the order of ``examples`` (model in eval mode)."""
    was_training, device = model.training, model_device(model)
    model.eval()
    probabilities = np.zeros((len(examples), getattr(model, "num_labels", 2)), dtype=np.float32)
    for indices, batch in sorted_batches(examples, batch_size):
        inputs = {k: v.to(device) for k, v in pad_collate(batch, pad_id).items() if k != "labels"}
        with autocast(device):
            logits = model(**inputs).logits  # (B, C)
        probabilities[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    model.train(was_training)
    return probabilities


def accuracy(model: nn.Module, examples: Sequence[Example], batch_size: int = 64, pad_id: int = 0) -> float:
    probabilities = predict_proba(model, examples, batch_size, pad_id)
    return float((probabilities.argmax(axis=1) == np.array([e.label for e in examples])).mean())


@torch.no_grad()
def frozen_features(encoder: nn.Module, examples: Sequence[Example], batch_size: int = 64,
                    pad_id: int = 0) -> dict[str, np.ndarray]:
    """One forward pass of a frozen ``BertModel``: two ``(N, H)`` feature arrays.

    ``"cls"``: the pooled ``[CLS]`` vector (what the fine-tuned classifier reads);
    ``"mean"``: the mean of the last layer over the real tokens (padding excluded),
    the pooling all-MiniLM-L6-v2 was trained with as a sentence-embedding model.
    """
    encoder.eval()
    device = model_device(encoder)
    H = encoder.config.hidden_size
    features = {"cls": np.zeros((len(examples), H), np.float32), "mean": np.zeros((len(examples), H), np.float32)}
    for indices, batch in sorted_batches(examples, batch_size):
        inputs = {k: v.to(device) for k, v in pad_collate(batch, pad_id).items() if k != "labels"}
        with autocast(device):
            out = encoder(**inputs)
        mask = inputs["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
        mean = (out.last_hidden_state.float() * mask).sum(dim=1) / mask.sum(dim=1)  # (B, H)
        features["cls"][indices] = out.pooler_output.float().cpu().numpy()
        features["mean"][indices] = mean.cpu().numpy()
    return features


# ---------------------------------------------------------------------------------------
# 4. Fine-tuning with chapter 4's loop
# ---------------------------------------------------------------------------------------


@dataclass
class FinetuneSettings:
    """Data sizes, truncation and optimisation of one fine-tuning run."""

    n_train: int  # IMDb train reviews to learn from
    n_validation: int  # more train reviews, held out to pick the best epoch
    n_test: int  # IMDb test reviews, touched once at the end
    truncation: Truncation
    learning_rate: float
    epochs: int
    batch_size: int = 16
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_batch_size: int = 64
    seed: int = 0
    # None keeps the checkpoint's rate (0.1 in BERT). On a CPU, dropping out the (B, nh, T, T)
    # attention probabilities costs as much as the rest of a training step: see finetune_settings.
    attention_dropout: float | None = None

    def training_config(self, progress: bool = True) -> TrainingConfig:
        """The loop's settings: one item of the training data is one bucketed batch."""
        return TrainingConfig(
            learning_rate=self.learning_rate, epochs=self.epochs, batch_size=1, warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay, keep_best="accuracy", load_best_at_end=True, seed=self.seed,
            progress=progress,
        )


@mode_settings
def finetune_settings() -> FinetuneSettings:
    """The chapter's settings for the current mode (``BERTEDU_QUICK``), or the one asked for.

    Quick: 2,000 reviews, 256 tokens, 2 epochs, learning rate 1e-4 (a 6-layer model takes a
    larger rate than BERT-base's 2e-5 to 5e-5), fits a 2-core CPU. Quick mode also turns
    attention dropout off: drawing a random mask for every one of the B x nh x T x T attention
    probabilities made each CPU training step twice as slow (``benchmarks/finetune_step.txt``),
    and two epochs leave little overfitting for it to prevent. Full: every train
    review (1,000 of them for validation), 512 tokens, the paper's head 128 + tail 382.
    """
    return FinetuneSettings(
        n_train=pick(quick=2_000, full=24_000),
        n_validation=pick(quick=200, full=1_000),
        n_test=pick(quick=1_000, full=25_000),
        truncation=pick(quick=Truncation(256, 64), full=Truncation(512, 128)),
        learning_rate=pick(quick=1e-4, full=5e-5),
        epochs=pick(quick=2, full=3),
        batch_size=pick(quick=16, full=32),
        eval_batch_size=pick(quick=64, full=256),
        attention_dropout=pick(quick=0.0, full=None),
    )


def small_bert_settings(settings: FinetuneSettings, max_position_embeddings: int) -> FinetuneSettings:
    """``settings`` adapted to chapter 4's small BERT (2 layers, hidden 128, 128 positions).

    Truncation shrinks to the model's positions, keeping the head:tail split. A model this
    small and this lightly pre-trained needs more steps and a larger rate than a real
    checkpoint: 4 epochs at 3e-4 won a validation sweep over epochs {2, 4} x rate
    {3e-4, 1e-3, 3e-3}, for the random and the pre-trained model alike
    (``benchmarks/small_bert_sweep.txt``).
    """
    return replace(settings, truncation=settings.truncation.fit(max_position_embeddings),
                   learning_rate=3e-4, epochs=4)


def set_attention_dropout(model: BertForSequenceClassification, p: float) -> None:
    """Set the dropout rate on the attention probabilities of every layer, and in the config."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"attention dropout must be in [0, 1), got {p}.")
    for module in model.modules():
        if isinstance(module, MultiHeadSelfAttention):
            module.dropout.p = p
    model.config.attention_probs_dropout_prob = p


def finetune(model: BertForSequenceClassification, train_examples: Sequence[Example],
             validation_examples: Sequence[Example], settings: FinetuneSettings, *, pad_id: int = 0,
             device: torch.device | None = None, progress: bool = True,
             checkpoint_dir: str | Path | None = None) -> TrainingHistory:
    """Fine-tune ``model`` in place; evaluate each epoch on validation, keep the best epoch.

    ``bertedu.training.train`` does the work; this function only supplies the chapter's
    pieces: bucketed batches, their collate function and a validation accuracy. With a
    ``checkpoint_dir``, each epoch ends with a checkpoint there and an interrupted run resumes.
    """
    if settings.attention_dropout is not None:
        set_attention_dropout(model, settings.attention_dropout)
    batches = LengthBucketedBatches(train_examples, settings.batch_size, seed=settings.seed)
    per_epoch = len(batches)  # evaluate (and, with a checkpoint_dir, save a resumable state) once per epoch
    config = replace(settings.training_config(progress), eval_every=per_epoch,
                     checkpoint_every=per_epoch if checkpoint_dir is not None else 0)

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"accuracy": accuracy(m, validation_examples, settings.eval_batch_size, pad_id)}

    return train(model, batches, config, collate_fn=BatchCollator(pad_id), evaluate=evaluate,
                 device=device or select_device(), checkpoint_dir=checkpoint_dir)


# ---------------------------------------------------------------------------------------
# 5. A fine-tuned classifier in use: predictions and attention from [CLS]
# ---------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """The verdict on one text. ``n_tokens`` counts its word pieces before truncation."""

    label: str
    probability: float  # of ``label``
    probabilities: dict[str, float]
    n_tokens: int
    truncated: bool


@dataclass
class Explanation:
    """One text's prediction and the attention ``[CLS]`` pays to each of its words."""

    prediction: Prediction
    words: list[str]
    weights: list[float]  # sums to 1 over the words

    def html(self) -> str:
        return attention_html(self.words, self.weights, self.prediction)


class SentimentClassifier:
    """A fine-tuned model with its tokenizer and truncation: text in, verdict out.

    >>> classifier = SentimentClassifier.from_pretrained(checkpoints_dir("ch5-sentiment"))
    >>> classifier.predict(["A wonderful film."])[0].label
    'positive'
    """

    def __init__(self, model: BertForSequenceClassification, vocab_file: str | Path, info: ClassifierInfo) -> None:
        from bertedu.tokenization import load_fast_tokenizer

        self.model = model.eval()
        self.vocab_file = Path(vocab_file)
        self.tokenizer = load_fast_tokenizer(vocab_file)
        self.info = info
        self.truncation = Truncation(info.max_length, info.head_tokens)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | None = None) -> SentimentClassifier:
        """Load a folder saved by ``save_pretrained`` (errors say what to do when it is not one)."""
        from bertedu.tokenization import find_vocab

        model, info = load_classifier(folder)
        return cls(model.to(device or select_device()), find_vocab(folder), info)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Weights, config, vocab.txt and the classifier.json marker (see bertedu.classification)."""
        return save_classifier(self.model, folder, self.vocab_file, self.info)

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]:
        """Classify texts of any length (long ones are cut to head + tail, as in training)."""
        pieces = word_pieces(self.tokenizer, texts)
        examples = [Example(self._frame(p)) for p in pieces]
        probabilities = predict_proba(self.model, examples, batch_size, self.tokenizer.pad_token_id)
        return [self._prediction(row, len(p)) for row, p in zip(probabilities, pieces)]

    @torch.no_grad()
    def explain(self, text: str, layer: int = -1) -> Explanation:
        """Predict one text and return the attention from ``[CLS]`` over its words."""
        self.model.eval()
        pieces = word_pieces(self.tokenizer, [text])[0]
        ids = self._frame(pieces)
        out = self.model(torch.tensor([ids], device=model_device(self.model)), output_attentions=True)  # (1, T)
        probabilities = torch.softmax(out.logits.float(), dim=-1)[0].cpu().numpy()  # (C,)
        weights = cls_attention(out.attentions, layer)  # (T,)
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        words, word_weights = merge_word_pieces(tokens[1:-1], weights[1:-1].tolist())  # without [CLS], [SEP]
        return Explanation(self._prediction(probabilities, len(pieces)), words, word_weights)

    def _frame(self, pieces: list[int]) -> list[int]:
        """``[CLS]`` + head + tail + ``[SEP]``: what the model reads of a text."""
        kept = truncate_head_tail(pieces, self.truncation.body, self.truncation.head_tokens)
        return [self.tokenizer.cls_token_id, *kept, self.tokenizer.sep_token_id]

    def _prediction(self, probabilities: np.ndarray, n_tokens: int) -> Prediction:
        best = int(probabilities.argmax())
        return Prediction(self.info.labels[best], float(probabilities[best]),
                          {name: float(p) for name, p in zip(self.info.labels, probabilities)},
                          n_tokens, n_tokens > self.truncation.body)


def cls_attention(attentions: Sequence[Tensor], layer: int = -1) -> Tensor:
    """How much ``[CLS]`` attends to each token in one layer, averaged over heads: ``(T,)``.

    ``attentions``: ``L`` tensors ``(1, nh, T, T)``; row 0 of each head is the query of
    ``[CLS]``, the position the pooler reads. A hint of where the model looks, not a
    proof of why it decides (Jain & Wallace, 2019, "Attention is not Explanation").
    """
    return attentions[layer][0, :, 0, :].float().mean(dim=0).cpu()  # (nh, T) -> (T,)


def merge_word_pieces(tokens: Sequence[str], weights: Sequence[float]) -> tuple[list[str], list[float]]:
    """Glue ``##`` pieces to their word and add up their weights; renormalise to sum 1."""
    words: list[str] = []
    merged: list[float] = []
    for token, weight in zip(tokens, weights):
        if token.startswith("##") and words:
            words[-1] += token[2:]
            merged[-1] += weight
        else:
            words.append(token)
            merged.append(weight)
    total = sum(merged) or 1.0
    return words, [w / total for w in merged]


def attention_html(words: Sequence[str], weights: Sequence[float], prediction: Prediction | None = None,
                   title: str = "") -> str:
    """The words with a red background as strong as ``[CLS]``'s attention to them."""
    top = max(weights, default=1.0) or 1.0
    spans = " ".join(
        f'<span style="background: rgba(220, 40, 40, {w / top:.2f}); padding: 0 1px">{html.escape(word)}</span>'
        for word, w in zip(words, weights)
    )
    header = html.escape(title)
    if prediction is not None:
        header += f" <b>predicted {html.escape(prediction.label)}</b> ({prediction.probability:.1%})"
    return (f'<div style="font-family: sans-serif; font-size: 12px; line-height: 1.6; margin-bottom: 10px">'
            f'<div>{header}</div>{spans}</div>')


# ---------------------------------------------------------------------------------------
# 6. Error analysis and the playground
# ---------------------------------------------------------------------------------------


def most_confident_errors(probabilities: np.ndarray, labels: Sequence[int], k: int = 5) -> list[int]:
    """Indices of the ``k`` wrong predictions made with the highest confidence."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(labels))
    return wrong[np.argsort(-probabilities[wrong].max(axis=1), kind="stable")][:k].tolist()


def accuracy_by_length(lengths: Sequence[int], correct: Sequence[bool], edges: Sequence[int]) -> list[dict[str, Any]]:
    """Accuracy in length bins ``[edges[i], edges[i+1])``; the last bin is open-ended."""
    lengths, correct = np.asarray(lengths), np.asarray(correct, dtype=float)
    rows = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else math.inf
        selected = (lengths >= low) & (lengths < high)
        if selected.any():
            label = f"{low}-{high - 1}" if high != math.inf else f"{low}+"
            rows.append({"bin": label, "n": int(selected.sum()), "accuracy": float(correct[selected].mean())})
    return rows


def sentiment_playground(classifier: SentimentClassifier, text: str = "The plot was thin, but the acting was superb.") -> Any:
    """A text box: type a review, see the probability and ``[CLS]``'s attention per word.

    ``classifier.explain(text).html()`` is the function behind it, callable directly.
    """
    import ipywidgets as widgets

    box = widgets.Textarea(value=text, layout=widgets.Layout(width="100%", height="80px"),
                           description="Review:", continuous_update=False)
    output = widgets.HTML()

    def redraw(_: Any = None) -> None:
        if not box.value.strip():
            output.value = "<i>Type a review above.</i>"
            return
        output.value = classifier.explain(box.value).html()

    box.observe(redraw, names="value")
    redraw()
    return widgets.VBox([box, output])


# ---------------------------------------------------------------------------------------
# 7. Command line: bertedu finetune / bertedu predict
# ---------------------------------------------------------------------------------------


def resolve_checkpoint(name: str) -> Path:
    """``default`` (the embedded all-MiniLM-L6-v2), ``small`` (chapter 4's model) or a folder."""
    if name == "default":
        from bertedu.checkpoint import default_checkpoint

        return default_checkpoint()
    if name == "small":
        from bertedu.pretraining import pretrained_small_bert

        return pretrained_small_bert()
    return Path(name).expanduser()


def configure_finetune(parser: argparse.ArgumentParser) -> None:
    from bertedu.cli import add_mode_flags

    add_mode_flags(parser)
    parser.add_argument("--checkpoint", default="default",
                        help="BERT to start from: 'default' (embedded all-MiniLM-L6-v2), 'small' (chapter 4's "
                             "model) or a checkpoint folder (config.json, weights, vocab.txt)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"where the fine-tuned model goes (default: data/checkpoints/{MODEL_NAME})")
    parser.add_argument("--epochs", type=int, default=None, help="override the mode's number of epochs")
    parser.add_argument("--n-train", type=int, default=None, help="override the mode's number of training reviews")
    parser.add_argument("--learning-rate", type=float, default=None, help="override the mode's peak learning rate")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="resumable training checkpoints, one per epoch (default: data/checkpoints/"
                             f"{RUN_NAME}-<mode>)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming an earlier run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--method", choices=("full", "lora", "adapter", "bitfit"), default="full",  # chapter 5b
                        help="what to train: every weight, LoRA factors, bottleneck adapters or the biases")
    parser.add_argument("--rank", type=int, default=None, help="LoRA's rank r (default 8) or the adapter's "
                                                                "bottleneck size (default 16)")


def prepare_run_dir(run_dir: Path, description: dict[str, Any], fresh: bool) -> None:
    """Make ``run_dir`` ready for a run described by ``description``.

    A run resumes only from a checkpoint of the *same* run: the description (checkpoint,
    data sizes, optimisation) is stored beside it and compared, since the loop itself can
    only check the batch size.
    """
    import shutil

    stored = run_dir / "run.json"
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    if stored.is_file() and json.loads(stored.read_text(encoding="utf-8")) != description:
        raise ValueError(f"{run_dir} holds a fine-tuning run with other settings (see {stored}). "
                         f"Add --fresh to start over, or pass another --run-dir.")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(stored, description)


def run_finetune(args: argparse.Namespace) -> int:
    from bertedu.data import load_imdb, train_validation_split
    from bertedu.settings import describe_run, mode_name, seed_everything
    from bertedu.tokenization import find_vocab, load_fast_tokenizer

    checkpoint = resolve_checkpoint(args.checkpoint)
    settings = finetune_settings()
    if args.checkpoint == "small":
        settings = small_bert_settings(settings, BertConfig.from_pretrained(checkpoint).max_position_embeddings)
    for name, value in (("epochs", args.epochs), ("n_train", args.n_train), ("learning_rate", args.learning_rate)):
        if value is not None:
            if value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive; got {value}.")
            settings = replace(settings, **{name: value})
    # Chapter 5b: --method / --rank.
    from bertedu.parameter_efficient import (
        LEARNING_RATES,
        apply_method,
        method_config,
        save_peft,
    )

    peft = method_config(args.method, args.rank, args.checkpoint, checkpoint)  # checked before anything is written
    if args.method != "full" and args.learning_rate is None:
        settings = replace(settings, learning_rate=LEARNING_RATES[args.method])
    suffix = "" if args.method == "full" else f"-{args.method}"
    output = args.output or checkpoints_dir(MODEL_NAME + suffix)
    run_dir = args.run_dir or checkpoints_dir(f"{RUN_NAME}-{mode_name()}{suffix}")
    description = {"checkpoint": str(checkpoint.resolve()), **asdict(settings),
                   **({"method": args.method, "rank": peft.rank} if args.method != "full" else {})}
    prepare_run_dir(run_dir, json.loads(json.dumps(description)), args.fresh)  # JSON round trip: tuples -> lists
    device = select_device()
    describe_run(device)
    seed_everything(settings.seed)
    model = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    if args.method != "full":
        apply_method(model, peft)
    tokenizer = load_fast_tokenizer(checkpoint)
    truncation = settings.truncation.fit(model.config.max_position_embeddings)

    started = time.perf_counter()
    reviews = load_imdb("train", n=settings.n_train + settings.n_validation, seed=settings.seed)
    train_reviews, validation_reviews = train_validation_split(reviews, settings.n_validation, seed=settings.seed)
    test_reviews = load_imdb("test", n=settings.n_test, seed=settings.seed)
    print(f"Fine-tuning {checkpoint} on {len(train_reviews)} reviews ({truncation.describe()}, "
          f"{settings.epochs} epochs, lr {settings.learning_rate:g}); validation {len(validation_reviews)}, "
          f"test {len(test_reviews)}.")
    pad_id = tokenizer.pad_token_id
    train_examples = encode_reviews(tokenizer, train_reviews.texts, train_reviews.labels, truncation)
    validation_examples = encode_reviews(tokenizer, validation_reviews.texts, validation_reviews.labels, truncation)
    history = finetune(model, train_examples, validation_examples, settings, pad_id=pad_id, device=device,
                       progress=not args.no_progress, checkpoint_dir=run_dir)
    test_examples = encode_reviews(tokenizer, test_reviews.texts, test_reviews.labels, truncation)
    probabilities = predict_proba(model, test_examples, settings.eval_batch_size, pad_id)
    scores = classification_scores(test_reviews.labels, probabilities.argmax(axis=1).tolist())
    minutes = (time.perf_counter() - started) / 60
    print(f"Best validation accuracy {history.best['accuracy']:.1%} (step {int(history.best['step'])}).")
    print(f"Test: {len(test_reviews)} reviews, {minutes:.1f} minutes in all\n{scores.report()}")
    info = ClassifierInfo(max_length=truncation.max_length, head_tokens=truncation.head_tokens,
                          base_checkpoint=str(checkpoint),
                          metrics={"test_accuracy": scores.accuracy, "test_macro_f1": scores.macro_f1,
                                   "n_test": len(test_reviews), "n_train": len(train_reviews)})
    if args.method == "full":
        save_classifier(model.cpu(), output, find_vocab(checkpoint), info)
    else:
        save_peft(model.cpu(), output, peft, find_vocab(checkpoint), info)
    print(f"Saved the fine-tuned model to {output}\nTry it: bertedu predict --model {output} \"What a film!\"")
    return 0


def configure_predict(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Classify texts with a fine-tuned model. Texts come from the arguments, or from --file "
        "(one text per line; '-' reads standard input), or from standard input when neither is given. "
        "Blank lines in a file are skipped; an empty argument is an error. Texts of any length are "
        "accepted: a long one is cut to its head and tail, as in training."
    )
    parser.epilog = (
        "output: one line per text, 'label<TAB>probability<TAB>text preview'; with --json one object per "
        "line with text, label, probability (of that label), probabilities (per label), n_tokens (word "
        "pieces before truncation), truncated, and line (for file input). Errors: one line on stderr, exit code 2."
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    parser.add_argument("--file", "-f", default=None, help="a UTF-8 text file with one text per line, or '-' for stdin")
    parser.add_argument("--model", "-m", type=Path, default=None,
                        help=f"a fine-tuned model folder (default: data/checkpoints/{MODEL_NAME}, "
                             f"written by `bertedu finetune`)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per text (JSON lines)")
    parser.add_argument("--encoding", default="utf-8", help="the encoding of --file / stdin (default: utf-8)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")


@dataclass
class InputText:
    """A text to classify and where it came from (for messages and JSON output)."""

    text: str
    source: str  # "argument 2", "line 7 of reviews.txt", "line 3 of stdin"
    line: int | None = None


def decode_input(data: bytes, name: str, encoding: str = "utf-8") -> str:
    """Bytes -> text, with an error that says where the bad byte is and what to do."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(
            f"{name} is not valid {encoding} text: byte 0x{data[error.start]:02x} at offset {error.start} "
            f"(line {line}). Convert it first (e.g. `iconv -f latin1 -t utf-8 {name}`) or name its "
            f"encoding with --encoding latin-1."
        ) from None
    except LookupError:
        raise ValueError(f"Unknown encoding {encoding!r}: use a Python codec name such as utf-8 or latin-1.") from None


def read_inputs(texts: Sequence[str], file: str | None, encoding: str = "utf-8",
                stdin: Any = None) -> list[InputText]:
    """Collect the texts to classify from arguments, a file or stdin (see ``configure_predict``)."""
    stdin = stdin if stdin is not None else sys.stdin
    inputs: list[InputText] = []
    for i, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")  # undecodable argument bytes arrive as lone surrogates
        except UnicodeEncodeError:
            raise ValueError(f"Argument {i} is not valid UTF-8 text: pass it in a file with --file and "
                             f"--encoding, or convert it with iconv.") from None
        if not text.strip():
            raise ValueError(f"Argument {i} is empty or only whitespace: there is nothing to classify.")
        inputs.append(InputText(text, f"argument {i}"))
    if file is None and not texts:
        if getattr(stdin, "isatty", lambda: False)():
            raise ValueError("No text to classify: give texts as arguments, --file FILE, or pipe them into "
                             "standard input (one per line).")
        file = "-"
    if file is not None:
        if file == "-":
            name, data = "stdin", stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8")
        else:
            path = Path(file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"No file {path}: give a text file with one text per line.")
            name, data = str(path), path.read_bytes()
        for number, line in enumerate(decode_input(data, name, encoding).splitlines(), start=1):
            if line.strip():
                inputs.append(InputText(line, f"line {number} of {name}", number))
    if not inputs:
        raise ValueError("No text to classify: the input holds only blank lines.")
    return inputs


def run_predict(args: argparse.Namespace) -> int:
    folder = args.model or checkpoints_dir(MODEL_NAME)
    if args.model is None and not folder.is_dir():
        raise FileNotFoundError(f"No fine-tuned model at {folder}. Train one with `bertedu finetune` "
                                f"(quick mode: a few minutes on a CPU), or pass --model DIR.")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1; got {args.batch_size}.")
    inputs = read_inputs(args.texts, args.file, args.encoding)
    classifier = SentimentClassifier.from_pretrained(folder)
    try:
        predictions = classifier.predict([item.text for item in inputs], batch_size=args.batch_size)
    except TextError as error:  # e.g. a text with no tokens: name it by where it came from
        raise ValueError(f"{inputs[error.index].source.capitalize()} {error.problem}") from None
    for item, prediction in zip(inputs, predictions):
        if args.json:
            record = {"text": item.text, **asdict(prediction)}
            if item.line is not None:
                record["line"] = item.line
            print(json.dumps(record, ensure_ascii=False))
        else:
            preview = " ".join(item.text.split())
            preview = preview if len(preview) <= 70 else preview[:67] + "..."
            print(f"{prediction.label}\t{prediction.probability:.3f}\t{preview}")
    return 0


__all__ = [
    "BatchCollator",
    "Example",
    "Explanation",
    "FinetuneSettings",
    "LengthBucketedBatches",
    "Prediction",
    "SentimentClassifier",
    "Truncation",
    "accuracy",
    "accuracy_by_length",
    "attention_html",
    "cls_attention",
    "encode_reviews",
    "encode_texts",
    "finetune",
    "finetune_settings",
    "frozen_features",
    "merge_word_pieces",
    "most_confident_errors",
    "pad_collate",
    "padding_fraction",
    "predict_proba",
    "read_inputs",
    "sentiment_playground",
    "sorted_batches",
    "truncate_head_tail",
    "word_pieces",
]

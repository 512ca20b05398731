"""Chapter 5: fine-tune BERT for IMDb sentiment.

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
- **The whole run** (``finetune_checkpoint``, what ``bertedu finetune`` calls, as
  ``pretrain`` is for chapter 4): the same splits for every model, fine-tuning chosen on
  validation, the test set touched once (``run_finetuning``), the classifier saved.

The fine-tuned classifier in use is ``bertedu.sentiment.SentimentClassifier``; scores and
error analysis are in ``bertedu.metrics``; its pictures and widget in ``bertedu.viz``.
"""
from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from bertedu.attention import MultiHeadSelfAttention
from bertedu.classification import (
    BertForSequenceClassification,
    ClassifierInfo,
    save_classifier,
)
from bertedu.errors import UserError
from bertedu.metrics import Scores, classification_scores
from bertedu.model import init_bert_weights
from bertedu.settings import (
    autocast,
    evaluating,
    is_quick,
    model_device,
    seed_everything,
    select_device,
)
from bertedu.settings import pick as pick_by_mode
from bertedu.training import TrainingConfig, TrainingHistory, train

if TYPE_CHECKING:
    from bertedu.data import ReviewSet
    from bertedu.model import BertConfig
    from bertedu.parameter_efficient import PeftConfig

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


class TextError(UserError):
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


def encode_splits(tokenizer: Any, splits: Sequence[ReviewSet], truncation: Truncation) -> list[list[Example]]:
    """Review sets (train, validation, test) -> one ``Example`` list each, all read the same way."""
    return [encode_reviews(tokenizer, split.texts, split.labels, truncation) for split in splits]


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
# 3. Predictions and frozen features
# ---------------------------------------------------------------------------------------


def predict_proba(model: nn.Module, examples: Sequence[Example], batch_size: int = 64, pad_id: int = 0,
                  cpu_bf16: bool = False) -> np.ndarray:
    """``(N, C)`` class probabilities in the order of ``examples`` (model in eval mode).

    ``cpu_bf16``: bf16 autocast on a CPU with native bf16 too (``settings.autocast``).
    """
    device = model_device(model)
    probabilities = np.zeros((len(examples), getattr(model, "num_labels", 2)), dtype=np.float32)
    with evaluating(model):
        for indices, batch in sorted_batches(examples, batch_size):
            inputs = {k: v.to(device) for k, v in pad_collate(batch, pad_id).items() if k != "labels"}
            with autocast(device, cpu=cpu_bf16):
                logits = model(**inputs).logits  # (B, C)
            probabilities[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probabilities


def accuracy(model: nn.Module, examples: Sequence[Example], batch_size: int = 64, pad_id: int = 0,
             cpu_bf16: bool = False) -> float:
    probabilities = predict_proba(model, examples, batch_size, pad_id, cpu_bf16)
    return float((probabilities.argmax(axis=1) == np.array([e.label for e in examples])).mean())


def frozen_features(encoder: nn.Module, examples: Sequence[Example], batch_size: int = 64,
                    pad_id: int = 0, cpu_bf16: bool = False) -> dict[str, np.ndarray]:
    """One forward pass of a frozen ``BertModel``: two ``(N, H)`` feature arrays.

    ``"cls"``: the pooled ``[CLS]`` vector (what the fine-tuned classifier reads);
    ``"mean"``: the mean of the last layer over the real tokens (padding excluded),
    the pooling all-MiniLM-L6-v2 was trained with as a sentence-embedding model.
    ``cpu_bf16``: as for ``predict_proba``.
    """
    device = model_device(encoder)
    H = encoder.config.hidden_size
    features = {"cls": np.zeros((len(examples), H), np.float32), "mean": np.zeros((len(examples), H), np.float32)}
    with evaluating(encoder):
        for indices, batch in sorted_batches(examples, batch_size):
            inputs = {k: v.to(device) for k, v in pad_collate(batch, pad_id).items() if k != "labels"}
            with autocast(device, cpu=cpu_bf16):
                out = encoder(**inputs)
            mask = inputs["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            mean = (out.last_hidden_state.float() * mask).sum(dim=1) / mask.sum(dim=1)  # (B, H)
            features["cls"][indices] = out.pooler_output.float().cpu().numpy()
            features["mean"][indices] = mean.cpu().numpy()
    return features


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """The mean cosine similarity over all pairs of distinct rows of ``(N, H)`` vectors.

    With unit rows u_i and their mean m, sum over i != j of u_i . u_j = N^2 |m|^2 - N, so the
    mean over the N(N - 1) pairs is (N |m|^2 - 1) / (N - 1): one pass, not N^2 dot products.
    Near 0: the vectors point every which way; near 1: they have collapsed onto one direction.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ValueError(f"mean_pairwise_cosine needs an (N, H) array with N >= 2; got shape {vectors.shape}.")
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)  # (N, H)
    n = len(units)
    return float((n * np.sum(units.mean(axis=0) ** 2) - 1) / (n - 1))


def word_embedding_cosine(encoder: nn.Module, n_special: int) -> float:
    """``mean_pairwise_cosine`` of an encoder's word-piece embeddings ``(V, H)``, special tokens left out.

    The first ``n_special`` rows are the special tokens (``[PAD]`` is a zero vector); a value
    well above 0 means every word piece leans along one shared direction.
    """
    weight = encoder.embeddings.word_embeddings.weight[n_special:]  # (V - n_special, H)
    return mean_pairwise_cosine(weight.detach().float().cpu().numpy())


def representation_similarity(encoder: nn.Module, examples: Sequence[Example], batch_size: int = 64,
                              pad_id: int = 0) -> dict[str, float]:
    """How alike a frozen ``BertModel``'s last-layer vectors are (``mean_pairwise_cosine``).

    ``"tokens"``: over the vectors of every real token of every example (padding excluded);
    ``"cls"``: over the examples' ``[CLS]`` vectors, one per review: what the classifier
    head starts from. A model whose vectors have collapsed onto one direction gives a
    fine-tuning head little to tell reviews apart by.
    """
    device = model_device(encoder)
    tokens, cls = [], []
    with evaluating(encoder):
        for _, batch in sorted_batches(examples, batch_size):
            inputs = {k: v.to(device) for k, v in pad_collate(batch, pad_id).items() if k != "labels"}
            hidden = encoder(**inputs).last_hidden_state.float()  # (B, T, H)
            tokens.append(hidden[inputs["attention_mask"].bool()].cpu().numpy())  # (real tokens, H)
            cls.append(hidden[:, 0].cpu().numpy())  # (B, H)
    return {"tokens": mean_pairwise_cosine(np.concatenate(tokens)), "cls": mean_pairwise_cosine(np.concatenate(cls))}


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
    # bf16 autocast on a CPU with native bf16 (settings.native_cpu_bf16), for training and
    # predictions; CPUs without it, and GPUs (bf16 there anyway), are unaffected.
    cpu_bf16: bool = False

    def training_config(self, progress: bool = True) -> TrainingConfig:
        """The loop's settings: one item of the training data is one bucketed batch."""
        return TrainingConfig(
            learning_rate=self.learning_rate, epochs=self.epochs, batch_size=1, warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay, keep_best="accuracy", load_best_at_end=True, seed=self.seed,
            progress=progress, cpu_bf16=self.cpu_bf16,
        )


def finetune_settings(quick: bool | None = None) -> FinetuneSettings:
    """The chapter's settings for quick or full mode (None: ``BERTEDU_QUICK`` decides).

    Quick: 2,000 reviews, 256 tokens, 1 epoch, learning rate 1e-4 (a 6-layer model takes a
    larger rate than BERT-base's 2e-5 to 5e-5), fits a 2-core CPU. One epoch is a budget
    choice, not validation's: a second one raised validation accuracy from 84.5% to 86.0%
    and nearly doubled the chapter's longest cell (``benchmarks/finetune_budget.txt``). Quick mode
    also turns attention dropout off: drawing a random mask for every one of the
    B x nh x T x T attention probabilities made each CPU training step twice as slow
    (``benchmarks/finetune_step.txt``), and one epoch leaves little overfitting for it to
    prevent. Full: every train review (1,000 of them for validation), 3 epochs, 512 tokens,
    the paper's head 128 + tail 382. Both modes autocast to bf16 on a CPU with native bf16
    (``cpu_bf16``; same accuracy, 1.5x faster on the course's AMD EPYC, same benchmark).
    """
    pick = functools.partial(pick_by_mode, mode=is_quick(quick))
    return FinetuneSettings(
        n_train=pick(quick=2_000, full=24_000),
        n_validation=pick(quick=200, full=1_000),
        n_test=pick(quick=1_000, full=25_000),
        truncation=pick(quick=Truncation(256, 64), full=Truncation(512, 128)),
        learning_rate=pick(quick=1e-4, full=5e-5),
        epochs=pick(quick=1, full=3),
        batch_size=pick(quick=16, full=32),
        eval_batch_size=pick(quick=64, full=256),
        attention_dropout=pick(quick=0.0, full=None),
        cpu_bf16=True,
    )


# (epochs, peak learning rate) of each small BERT's fine-tuning: the validation winners of
# benchmarks/small_bert_sweep.txt over epochs {2, 4} x rate {3e-4, 1e-3, 3e-3} on chapter 5's
# quick splits (ties go to the first row: fewer epochs, then the smaller rate). Its second table,
# run on another machine whose chapter 4 quick run differs in the last bits, adds the rate 5e-4
# and "rescaled"; there 5e-4 wins only for "new-attention", whose schedule stays the first
# table's. "new-attention": chapter 4's quick run with its attention re-initialised
# (``reinitialize_attention``); "rescaled": that, with its embedding tables scaled to BERT's
# initial size (``rescale_embeddings``). Those tables measured chapter 4's run with its positions
# at 0.1; since it starts them at 0.05, "pretrained" and "rescaled" are the winners of that run's
# own sweeps (benchmarks/quick_run_levers.txt, third and fourth tables: 2 or 4 epochs x 3e-4,
# 5e-4, 1e-3), while "new-attention" keeps the 0.1 run's schedule (no live cell uses it).
SMALL_BERT_SCHEDULES = {"random": (4, 3e-4), "pretrained": (4, 5e-4), "new-attention": (4, 1e-3),
                        "rescaled": (4, 3e-4), "shipped": (4, 1e-3)}


def check_small_bert_kind(weights: str) -> str:
    """``weights`` if it is a kind of small-BERT weights (a key of ``SMALL_BERT_SCHEDULES``), else
    a ``UserError`` that lists them."""
    if weights not in SMALL_BERT_SCHEDULES:
        raise UserError(f"Unknown small-BERT weights {weights!r}; choose one of {', '.join(SMALL_BERT_SCHEDULES)}.")
    return weights


def small_bert_settings(settings: FinetuneSettings, max_position_embeddings: int,
                        weights: str = "random") -> FinetuneSettings:
    """``settings`` adapted to a small BERT (2 layers, hidden 128, 128 positions).

    Truncation shrinks to the model's positions, keeping the head:tail split. A model this
    small needs more steps and a larger rate than a real checkpoint; each kind of weights
    (``"random"``, ``"pretrained"``: chapter 4's quick run, ``"new-attention"``: that run with
    its attention re-initialised, ``"rescaled"``: and its embedding tables scaled to BERT's
    initial size, ``"shipped"``: the shipped small BERT) gets the epochs and
    rate that won its own validation sweep (``SMALL_BERT_SCHEDULES``,
    ``benchmarks/small_bert_sweep.txt``; ``"pretrained"`` and ``"rescaled"``: the sweeps of
    chapter 4's run with its positions at 0.05, ``benchmarks/quick_run_levers.txt``).
    """
    epochs, rate = SMALL_BERT_SCHEDULES[check_small_bert_kind(weights)]
    # float32: the schedules were chosen in float32, and bf16 speeds up a model this narrow little
    return replace(settings, truncation=settings.truncation.fit(max_position_embeddings),
                   learning_rate=rate, epochs=epochs, cpu_bf16=False)


def small_bert_classifier(config: BertConfig, folder: str | Path | None, new_attention: bool = False,
                          rescale: bool = False) -> BertForSequenceClassification:
    """A two-class classifier on a small BERT: the random weights of ``config`` when ``folder``
    is None, else ``load_classifier(folder, new_attention, rescale)``; a new head either way.
    Both draw from torch's generator: seed first (``seed_everything``) to compare them fairly."""
    if folder is None:
        return BertForSequenceClassification(config, num_labels=2)
    return load_classifier(folder, new_attention, rescale)


def small_bert_of_kind(weights: str, config: BertConfig, folder: str | Path | None) -> BertForSequenceClassification:
    """``small_bert_classifier`` for a kind of weights (a key of ``SMALL_BERT_SCHEDULES``):
    random weights for ``"random"`` (``folder`` is not read), else the encoder saved in
    ``folder``, with its attention drawn again for ``"new-attention"`` and ``"rescaled"`` and
    its embedding tables rescaled for ``"rescaled"`` (point 1c). Fine-tune it with
    ``small_bert_settings(..., weights=weights)``; seed first."""
    if check_small_bert_kind(weights) != "random" and folder is None:
        raise UserError(f"Small-BERT weights {weights!r} are loaded from a saved encoder: pass its folder "
                        "(None only for 'random').")
    return small_bert_classifier(config, None if weights == "random" else folder,
                                 new_attention=weights in ("new-attention", "rescaled"), rescale=weights == "rescaled")


def load_classifier(folder: str | Path, new_attention: bool = False, rescale: bool = False,
                    log: Callable[[str], None] | None = None) -> BertForSequenceClassification:
    """The pre-trained encoder saved in ``folder`` with a new two-class head.

    ``new_attention``: then draw its attention again (``reinitialize_attention``); ``rescale``:
    and scale its embedding tables to BERT's initial size (``rescale_embeddings``). ``log``
    hears each step that was done (and the factor). Both together are chapter 5a's point 1c.
    """
    log = log or (lambda message: None)
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    if new_attention:
        reinitialize_attention(model)
        log(f"New attention in all {model.config.num_hidden_layers} layers (chapter 5a, point 1c).")
    if rescale:
        log(f"Embedding tables scaled by {rescale_embeddings(model):.3f} (chapter 5a, point 1c).")
    return model


def reinitialize_attention(model: BertForSequenceClassification) -> None:
    """Draw every layer's attention sublayer again as BERT initialises it, in place.

    Per layer: W_Q, W_K, W_V ``(H, H)`` and their biases, W^O ``(H, H)`` and the sublayer's
    LayerNorm. The word, position and segment embeddings, the feed-forward layers and the
    pooler keep their pre-trained values. With new W_Q and W_K (standard deviation 0.02) every
    attention row starts nearly uniform, as with random weights: ``[CLS]`` starts by reading the
    whole review, not where pre-training taught it to look (chapter 5a, point 1b). The weights come
    from torch's generator: seed first.
    """
    initialize = functools.partial(init_bert_weights, initializer_range=model.config.initializer_range)
    for layer in model.bert.encoder.layer:
        layer.attention.apply(initialize)


def rescale_embeddings(model: BertForSequenceClassification) -> float:
    """Scale the word, position and segment tables by one factor, in place, so that the word
    table's root-mean-square entry is BERT's initial standard deviation (``initializer_range``,
    0.02); returns the factor.

    The forward pass does not change: the three rows are summed and then LayerNorm'd, and
    ``LayerNorm(c x) = LayerNorm(x)`` for ``c > 0`` (up to its eps). What changes is how fast
    fine-tuning moves them relative to their size: their gradients scale by ``1 / c``, Adam
    divides that scale away and steps every entry by about the learning rate, so a table ``c``
    times larger than at initialisation turns ``c`` times more slowly (chapter 5a, point 1c).
    """
    embeddings = model.bert.embeddings
    tables = (embeddings.word_embeddings, embeddings.position_embeddings, embeddings.token_type_embeddings)
    with torch.no_grad():
        rms = float(tables[0].weight.pow(2).mean().sqrt())
        if rms == 0.0:
            raise UserError("The word embeddings are all zero: there is no scale to match.")
        factor = model.config.initializer_range / rms
        for table in tables:
            table.weight.mul_(factor)
    return factor


def set_attention_dropout(model: BertForSequenceClassification, p: float) -> None:
    """Set the dropout rate on the attention probabilities of every layer, and in the config."""
    if not 0.0 <= p < 1.0:
        raise UserError(f"attention dropout must be in [0, 1), got {p}.")
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
        return {"accuracy": accuracy(m, validation_examples, settings.eval_batch_size, pad_id, settings.cpu_bf16)}

    return train(model, batches, config, collate_fn=BatchCollator(pad_id), evaluate=evaluate,
                 device=device or select_device(), checkpoint_dir=checkpoint_dir)


# ---------------------------------------------------------------------------------------
# 5. The whole run: the same splits, fine-tuning, the test set once, the saved classifier
# ---------------------------------------------------------------------------------------


@dataclass
class FinetuningRun:
    """What ``run_finetuning`` returns: the trained model and how it did."""

    model: BertForSequenceClassification
    history: TrainingHistory  # losses per step, validation accuracy per epoch, the best epoch
    test_probabilities: np.ndarray  # (N_test, C)
    scores: Scores  # on the test set
    seconds: float  # fine-tuning and testing, wall clock


def sentiment_splits(settings: FinetuneSettings) -> tuple[ReviewSet, ReviewSet, ReviewSet]:
    """Train, validation and test reviews: the same for every model of chapter 5.

    Train and validation come from IMDb's train split (label-balanced, ``settings.seed``),
    test from IMDb's test split.
    """
    from bertedu.data import load_imdb, train_validation_split

    reviews = load_imdb("train", n=settings.n_train + settings.n_validation, seed=settings.seed)
    train_reviews, validation_reviews = train_validation_split(reviews, settings.n_validation, seed=settings.seed)
    return train_reviews, validation_reviews, load_imdb("test", n=settings.n_test, seed=settings.seed)


def run_finetuning(model: BertForSequenceClassification, train_examples: Sequence[Example],
                   validation_examples: Sequence[Example], test_examples: Sequence[Example],
                   settings: FinetuneSettings, *, pad_id: int = 0, device: torch.device | None = None,
                   progress: bool = True, checkpoint_dir: str | Path | None = None) -> FinetuningRun:
    """Fine-tune ``model`` (best epoch on validation), then score it once on the test examples."""
    started = time.perf_counter()
    seed_everything(settings.seed)
    history = finetune(model, train_examples, validation_examples, settings, pad_id=pad_id, device=device,
                       progress=progress, checkpoint_dir=checkpoint_dir)
    probabilities = predict_proba(model, test_examples, settings.eval_batch_size, pad_id, settings.cpu_bf16)
    scores = classification_scores([e.label for e in test_examples], probabilities.argmax(axis=1).tolist())
    return FinetuningRun(model, history, probabilities, scores, time.perf_counter() - started)


def resolve_checkpoint(name: str, progress: bool = True) -> Path:
    """``default`` (the embedded all-MiniLM-L6-v2), ``small`` (chapter 4's model, pre-trained
    now if missing, with a progress bar unless ``progress=False``), ``shipped`` (the small BERT
    shipped with the package) or a folder."""
    if name == "default":
        from bertedu.checkpoint import default_checkpoint

        return default_checkpoint()
    if name == "small":
        from bertedu.pretraining import pretrained_small_bert

        return pretrained_small_bert(progress)
    if name == "shipped":
        from bertedu.pretraining import shipped_small_bert

        return shipped_small_bert()
    return Path(name).expanduser()


# Why ``fresh_attention`` (``--fresh-attention``) refuses a PEFT method: one message for the
# command, which checks before it reads anything, and for ``finetune_checkpoint``; each names
# its own spelling of the option and of the method.
FRESH_ATTENTION_NEEDS_FULL = ("{option} changes the base model's weights, which {method} does not save "
                              "(it saves only its own parameters): use it with {full}.")


def finetune_checkpoint(checkpoint: str | Path, settings: FinetuneSettings, *, output_dir: str | Path | None = None,
                        checkpoint_dir: str | Path | None = None, progress: bool = True,
                        device: torch.device | None = None, log: Callable[[str], None] = print,
                        peft: PeftConfig | None = None, fresh_attention: bool = False) -> FinetuningRun:
    """Fine-tune a BERT checkpoint folder for IMDb sentiment: ``bertedu finetune`` in Python.

    Loads the checkpoint with a new classifier head, reads the chapter's splits the way the
    model will read text (``settings.truncation``, fitted to the model's positions), runs
    ``run_finetuning`` and, with ``output_dir``, saves the classifier folder that
    ``SentimentClassifier.from_pretrained`` and ``bertedu predict`` load. With ``peft``
    (chapter 5b: LoRA, adapters or BitFit), only that method's parameters train and only
    they are saved, with the base checkpoint named in their config. ``fresh_attention``:
    chapter 5a's point 1c before training, the encoder's attention drawn again
    (``reinitialize_attention``) and its embedding tables scaled to BERT's initial size
    (``rescale_embeddings``), as ``load_classifier(..., new_attention=True, rescale=True)``
    does after the same seed; a full fine-tune only (a PEFT method would save changes to weights
    its base checkpoint does not hold).
    """
    from bertedu.tokenization import find_vocab, load_fast_tokenizer

    if fresh_attention and peft is not None:
        raise UserError(FRESH_ATTENTION_NEEDS_FULL.format(option="fresh_attention=True", full="peft=None",
                                                          method=f"a PEFT method ({peft.method})"))
    checkpoint = Path(checkpoint)
    device = device or select_device()
    seed_everything(settings.seed)
    model = load_classifier(checkpoint, new_attention=fresh_attention, rescale=fresh_attention, log=log)
    if peft is not None:
        from bertedu.parameter_efficient import apply_method

        apply_method(model, peft)
    tokenizer = load_fast_tokenizer(checkpoint)
    truncation = settings.truncation.fit(model.config.max_position_embeddings)
    train_reviews, validation_reviews, test_reviews = sentiment_splits(settings)
    log(f"Fine-tuning {checkpoint} on {len(train_reviews)} reviews ({truncation.describe()}, "
        f"{settings.epochs} epochs, lr {settings.learning_rate:g}); validation {len(validation_reviews)}, "
        f"test {len(test_reviews)}.")
    train_examples, validation_examples, test_examples = encode_splits(
        tokenizer, (train_reviews, validation_reviews, test_reviews), truncation)
    run = run_finetuning(model, train_examples, validation_examples, test_examples, settings,
                         pad_id=tokenizer.pad_token_id, device=device, progress=progress,
                         checkpoint_dir=checkpoint_dir)
    if output_dir is not None:
        info = ClassifierInfo(max_length=truncation.max_length, head_tokens=truncation.head_tokens,
                              base_checkpoint=str(checkpoint),
                              metrics={"test_accuracy": run.scores.accuracy, "test_macro_f1": run.scores.macro_f1,
                                       "n_test": len(test_reviews), "n_train": len(train_reviews)})
        if peft is None:
            save_classifier(model.cpu(), output_dir, find_vocab(checkpoint), info)
        else:
            from bertedu.parameter_efficient import save_peft

            save_peft(model.cpu(), output_dir, peft, find_vocab(checkpoint), info)
    return run

"""Chapter 7: counterfactual data augmentation (CDA), and a fair before/after comparison.

CDA (Lu et al., 2018; Zhao et al., 2018) trains on every review *and* its copy with the
gendered words swapped (``bertedu.counterfactual.swap_gender``), both with the review's
label. A gendered word then carries no information about the label, so the model has no
reason to use it.

The budget is the baseline's: the doubled training set is read for half the epochs, so
both models take the same number of optimizer steps on the same reviews (the baseline
reads each review twice as is; CDA reads it once as is and once swapped). A review
without a gendered word is its own swapped copy, so it is seen twice in both runs.

``comparison_settings``: what both models are trained with here. The course's notebook
must run in minutes, and chapter 5's fine-tune alone takes most of that, so in quick
mode both models get a smaller, equal budget (600 reviews, 128 tokens, 2 epochs' worth
of steps: 76 and 75 optimizer steps, about 1.5 minutes per model on 2 CPU cores) rather
than comparing chapter 5's model against a cheaper CDA run. Full mode:
chapter 5's full settings with 2 epochs (an even number, for the halving).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from bertedu.counterfactual import swap_gender
from bertedu.finetuning import (
    FinetuneSettings,
    Truncation,
    encode_reviews,
    finetune,
    finetune_settings,
)
from bertedu.sentiment import SentimentClassifier
from bertedu.settings import is_quick, pick


def comparison_settings(quick: bool | None = None) -> FinetuneSettings:
    """The baseline's settings for the before/after comparison (CDA: ``cda_settings`` of them)."""
    mode = is_quick(quick)
    return replace(finetune_settings(mode), n_train=pick(quick=600, full=24_000, mode=mode),
                   truncation=pick(quick=Truncation(128, 32), full=Truncation(512, 128), mode=mode), epochs=2,
                   cpu_bf16=False)  # chapter 7's numbers were measured in float32


def augment_counterfactual(texts: Sequence[str], labels: Sequence[int]) -> tuple[list[str], list[int]]:
    """Every review followed by its gender-swapped copy, with the same label: ``2N`` of each."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
    out_texts, out_labels = [], []
    for text, label in zip(texts, labels):
        out_texts += [text, swap_gender(text)]
        out_labels += [int(label), int(label)]
    return out_texts, out_labels


def cda_settings(settings: FinetuneSettings) -> FinetuneSettings:
    """The same optimizer steps on a twice-as-large training set: half the epochs."""
    if settings.epochs % 2:
        raise ValueError(f"CDA halves the epochs to keep the step count; {settings.epochs} epochs is odd. "
                         "Use an even number of epochs for the baseline.")
    return replace(settings, epochs=settings.epochs // 2)


@dataclass
class TrainedModel:
    """A classifier trained here, with the history and step count of its run."""

    classifier: SentimentClassifier
    history: Any  # bertedu.training.TrainingHistory
    steps: int
    n_training_examples: int


def train_sentiment_model(settings: FinetuneSettings, *, augment: bool = False, checkpoint: Any = None,
                          device: torch.device | None = None, progress: bool = False) -> TrainedModel:
    """Fine-tune ``checkpoint`` (default: the course's MiniLM) as chapter 5 does, with or without CDA.

    The training and validation reviews are chapter 5's (``load_imdb("train", ...)`` with
    the settings' seed, then ``train_validation_split``); validation is never augmented.
    """
    from bertedu.checkpoint import default_checkpoint
    from bertedu.classification import BertForSequenceClassification, ClassifierInfo
    from bertedu.data import load_imdb, train_validation_split
    from bertedu.settings import seed_everything, select_device
    from bertedu.tokenization import find_vocab, load_fast_tokenizer

    checkpoint = checkpoint or default_checkpoint()
    device = device or select_device()
    run_settings = cda_settings(settings) if augment else settings
    seed_everything(settings.seed)
    model = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
    tokenizer = load_fast_tokenizer(checkpoint)
    truncation = settings.truncation.fit(model.config.max_position_embeddings)
    reviews = load_imdb("train", n=settings.n_train + settings.n_validation, seed=settings.seed)
    train_reviews, validation_reviews = train_validation_split(reviews, settings.n_validation, seed=settings.seed)
    texts, labels = train_reviews.texts, train_reviews.labels
    if augment:
        texts, labels = augment_counterfactual(texts, labels)
    train_examples = encode_reviews(tokenizer, texts, labels, truncation)
    validation_examples = encode_reviews(tokenizer, validation_reviews.texts, validation_reviews.labels, truncation)
    history = finetune(model, train_examples, validation_examples, run_settings, pad_id=tokenizer.pad_token_id,
                       device=device, progress=progress)
    info = ClassifierInfo(max_length=truncation.max_length, head_tokens=truncation.head_tokens,
                          base_checkpoint=str(checkpoint),
                          metrics={"n_train": len(train_reviews), "cda": float(augment)})
    steps = int(history.train[-1]["step"]) if history.train else 0
    return TrainedModel(SentimentClassifier(model.eval(), find_vocab(checkpoint), info), history, steps,
                        len(train_examples))


__all__ = ["TrainedModel", "augment_counterfactual", "cda_settings", "comparison_settings", "train_sentiment_model"]

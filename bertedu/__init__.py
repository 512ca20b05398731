"""bertedu: build BERT from scratch, chapter by chapter.

Each chapter of the course saves its finished components here, so later chapters (and
you) can import them::

    import bertedu
    reviews = bertedu.load_imdb("train", n=2_000)        # chapter 0
    model = bertedu.BertModel.from_pretrained(bertedu.default_checkpoint())  # chapter 3

Names are imported lazily, so ``import bertedu`` stays fast and a chapter's module is
loaded only when you use it.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (the chapter that builds it is in that module's docstring)
_EXPORTS: dict[str, str] = {
    # chapter 0: data and run settings
    "load_imdb": "bertedu.data",
    "train_validation_split": "bertedu.data",
    "Review": "bertedu.data",
    "describe_run": "bertedu.settings",
    "select_device": "bertedu.settings",
    "seed_everything": "bertedu.settings",
    "is_quick": "bertedu.settings",
    "pick": "bertedu.settings",
    "show_source": "bertedu.source",
    # chapter 1: tokenization
    "BertTokenizer": "bertedu.tokenization",
    "load_fast_tokenizer": "bertedu.tokenization",
    "train_wordpiece_vocab": "bertedu.tokenization",
    "imdb_wordpiece_vocab": "bertedu.tokenization",
    # chapter 2: attention
    "MultiHeadSelfAttention": "bertedu.attention",
    # chapter 3: the encoder
    "BertConfig": "bertedu.model",
    "BertModel": "bertedu.model",
    "BaseModelOutputWithPooling": "bertedu.model",
    "init_bert_weights": "bertedu.model",
    "default_checkpoint": "bertedu.checkpoint",
    # chapter 4: pre-training
    "BertForPreTraining": "bertedu.pretraining",
    "mask_tokens": "bertedu.pretraining",
    "pretrain": "bertedu.pretraining",
    "pretrained_small_bert": "bertedu.pretraining",
    "TrainingConfig": "bertedu.training",
    "TrainingHistory": "bertedu.training",
    "train": "bertedu.training",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bertedu' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)

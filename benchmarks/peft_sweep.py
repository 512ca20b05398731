"""Chapter 5b: the learning rate of each fine-tuning method, chosen on validation.

The chapter's quick budget (``bertedu.parameter_efficient.peft_settings``: 1,000 of chapter
5's training reviews, 96 tokens, one epoch, batch 16) for every method; each run is scored
on the 200 validation reviews only (the test reviews are not touched here). The rate with
the best validation accuracy goes into ``LEARNING_RATES``. LoRA's rate is chosen at r = 8
and reused for r = 2 and 32: with the alpha / r scaling (alpha = 2r), the update's size
does not depend on r (Hu et al., 2021, section 4.1).

    python benchmarks/peft_sweep.py METHOD:LR [METHOD:LR ...] > benchmarks/peft_sweep.txt   # e.g. lora:1e-3 lora:2e-3
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

import torch

from bertedu.checkpoint import default_checkpoint
from bertedu.classification import BertForSequenceClassification
from bertedu.data import balanced_subsample, load_imdb, train_validation_split
from bertedu.finetuning import encode_reviews, finetune, finetune_settings
from bertedu.parameter_efficient import (
    DEFAULT_RANKS,
    PeftConfig,
    apply_method,
    count_parameters,
    peft_settings,
)
from bertedu.settings import seed_everything
from bertedu.tokenization import load_fast_tokenizer


def main(runs: list[str]) -> None:
    torch.set_num_threads(1)
    chapter5 = finetune_settings()
    reviews = load_imdb("train", n=chapter5.n_train + chapter5.n_validation, seed=chapter5.seed)
    train_reviews, validation_reviews = train_validation_split(reviews, chapter5.n_validation, seed=chapter5.seed)
    checkpoint = default_checkpoint()
    tokenizer = load_fast_tokenizer(checkpoint)
    for run in runs:
        method, rate = run.split(":")
        settings = replace(peft_settings(method), learning_rate=float(rate))
        subset = balanced_subsample(train_reviews, settings.n_train, seed=settings.seed)
        train = encode_reviews(tokenizer, subset.texts, subset.labels, settings.truncation)
        validation = encode_reviews(tokenizer, validation_reviews.texts, validation_reviews.labels, settings.truncation)
        seed_everything(settings.seed)
        model = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
        apply_method(model, PeftConfig(method, rank=DEFAULT_RANKS.get(method, 8)))
        started = time.perf_counter()
        history = finetune(model, train, validation, settings, pad_id=tokenizer.pad_token_id,
                           device=torch.device("cpu"), progress=False)
        print(f"{method:8s} lr {float(rate):<8g} trainable {count_parameters(model)[0]:>10,d}  "
              f"validation accuracy {history.best['accuracy']:.3f}  ({time.perf_counter() - started:.0f} s, "
              f"1 thread, shared CPU)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

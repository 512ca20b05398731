"""Which epochs and learning rate for chapter 4's small BERT in chapter 5a? A validation sweep.

Fine-tunes the small BERT (2 layers, hidden 128, 128 positions) from random weights, from
chapter 4's quick pre-training (as saved; with its attention re-initialised:
`reinitialize_attention`; and with its embedding tables scaled to BERT's initial size as well:
`rescale_embeddings`) and from the shipped small BERT (the same architecture and
vocabulary, pre-trained for an hour: `shipped_small_bert()`), on chapter 5's quick-mode splits (2,000 train, 200 validation reviews),
for every pair of epochs {2, 4} x peak learning rate {3e-4, 5e-4, 1e-3, 3e-3} (the first stored
table was run before 5e-4 joined the grid). The choice goes by
**validation** accuracy; test accuracy (1,000 reviews) is printed only to show how noisy such
small runs are. `bertedu.finetuning.SMALL_BERT_SCHEDULES` holds each kind of weights' winner.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_sweep.py [--weights random,pretrained,...]

The output of a run is stored next to this file (small_bert_sweep.txt). ``--weights`` runs only
the named kinds, a comma-separated subset of random, pretrained, new-attention, rescaled, shipped (every
row is seeded, so a kind left out keeps its stored rows).
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from small_berts import KINDS, load_small_berts, subset_option  # benchmarks/small_berts.py, beside this script

WEIGHTS = KINDS
RATES = (3e-4, 5e-4, 1e-3, 3e-3)


def main(kinds: tuple[str, ...] = WEIGHTS) -> None:
    from bertedu.finetuning import encode_splits, finetune, finetune_settings, predict_proba, sentiment_splits
    from bertedu.settings import seed_everything

    settings = finetune_settings(quick=True)
    train_reviews, validation_reviews, test_reviews = sentiment_splits(settings)
    small_berts = load_small_berts()
    tokenizer, config = small_berts.tokenizer, small_berts.config
    truncation = settings.truncation.fit(config.max_position_embeddings)
    train_set, validation_set, test_set = encode_splits(tokenizer, (train_reviews, validation_reviews, test_reviews),
                                                        truncation)
    print(f"small BERT from {small_berts.folders['pretrained'].name}: {truncation.describe()}; "
          f"quick-mode settings otherwise (batch {settings.batch_size}, attention dropout {settings.attention_dropout})")
    print(f"{'weights':13s} {'epochs':>6s} {'lr':>7s} {'validation':>10s} {'test':>6s} {'seconds':>7s}")
    best: dict[str, tuple[float, int, float]] = {}
    for epochs, rate, weights in itertools.product((2, 4), RATES, kinds):
        run = replace(settings, truncation=truncation, learning_rate=rate, epochs=epochs, cpu_bf16=False)
        seed_everything(run.seed)
        model = small_berts.classifier(weights)
        started = time.perf_counter()
        history = finetune(model, train_set, validation_set, run, pad_id=tokenizer.pad_token_id,
                           device=torch.device("cpu"), progress=False)
        probabilities = predict_proba(model, test_set, run.eval_batch_size, tokenizer.pad_token_id)
        test_accuracy = float((probabilities.argmax(1) == np.array(test_reviews.labels)).mean())
        validation_accuracy = history.best["accuracy"]
        print(f"{weights:13s} {epochs:6d} {rate:7.0e} {validation_accuracy:10.1%} {test_accuracy:6.1%} "
              f"{time.perf_counter() - started:7.0f}", flush=True)
        if validation_accuracy > best.get(weights, (-1.0,))[0]:
            best[weights] = (validation_accuracy, epochs, rate)
    for weights, (validation_accuracy, epochs, rate) in best.items():
        print(f"best on validation, {weights}: {epochs} epochs, lr {rate:g} ({validation_accuracy:.1%})")


if __name__ == "__main__":
    main(subset_option(sys.argv[1:], "--weights", WEIGHTS))

"""Does the shipped small BERT beat random weights by more than seed noise? Five seeds each.

Chapter 5 fine-tunes the small BERT (2 layers, hidden 128) from random weights and from the
shipped pre-trained weights (`shipped_small_bert()`) once, with seed 0. One run per arm cannot
tell a gain of a point or two from the run-to-run spread. This script repeats both rows with
seeds 0-4 on the same splits (chapter 5's quick mode: 2,000 train, 200 validation, 1,000 test
reviews, the same data for every seed, seed 0 is chapter 5's run; the seed changes the random initial weights, the
classifier head's initial weights and the batch order), each with its schedule chosen on
validation (`SMALL_BERT_SCHEDULES`, `benchmarks/small_bert_sweep.txt`), and prints test
accuracy per seed, the mean, the standard deviation and the paired mean gain.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_seeds.py [n_seeds]

The output of a run is stored next to this file (small_bert_seeds.txt).
"""
from __future__ import annotations

import statistics
import sys
from dataclasses import replace

import torch


def main(n_seeds: int) -> None:
    from bertedu.classification import BertForSequenceClassification
    from bertedu.finetuning import (encode_reviews, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_settings)
    from bertedu.model import BertConfig
    from bertedu.pretraining import shipped_small_bert
    from bertedu.settings import seed_everything
    from bertedu.tokenization import load_fast_tokenizer

    base = finetune_settings(quick=True)
    train_reviews, validation_reviews, test_reviews = sentiment_splits(base)
    shipped = shipped_small_bert()
    tokenizer = load_fast_tokenizer(shipped)
    config = BertConfig.from_pretrained(shipped)
    arms = {weights: small_bert_settings(base, config.max_position_embeddings, weights) for weights in ("random", "shipped")}
    truncation = arms["random"].truncation
    train_set, validation_set, test_set = (encode_reviews(tokenizer, split.texts, split.labels, truncation)
                                           for split in (train_reviews, validation_reviews, test_reviews))
    print(f"small BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}), {truncation.describe()}; "
          + "; ".join(f"{w}: {s.epochs} epochs, lr {s.learning_rate:g}" for w, s in arms.items()))
    print(f"{'seed':>4s} {'random val':>10s} {'test':>6s} {'shipped val':>11s} {'test':>6s} {'gain':>6s}")
    tests: dict[str, list[float]] = {"random": [], "shipped": []}
    for seed in range(n_seeds):
        row = []
        for weights, settings in arms.items():
            run = replace(settings, seed=seed)
            seed_everything(seed)
            model = (BertForSequenceClassification(config, num_labels=2) if weights == "random"
                     else BertForSequenceClassification.from_pretrained(shipped, num_labels=2))
            result = run_finetuning(model, train_set, validation_set, test_set, run, pad_id=tokenizer.pad_token_id,
                                    device=torch.device("cpu"), progress=False)  # as chapter 5 does
            tests[weights].append(result.scores.accuracy)
            row.append((result.history.best["accuracy"], result.scores.accuracy))
        (rv, rt), (sv, st) = row
        print(f"{seed:4d} {rv:10.1%} {rt:6.1%} {sv:11.1%} {st:6.1%} {100 * (st - rt):+6.1f}", flush=True)
    gains = [100 * (s - r) for r, s in zip(tests["random"], tests["shipped"])]
    for weights, accuracies in tests.items():
        print(f"{weights:8s} test accuracy: mean {statistics.mean(accuracies):.1%}, "
              f"standard deviation {100 * statistics.stdev(accuracies):.1f} points")
    se = statistics.stdev(gains) / len(gains) ** 0.5
    print(f"paired gain of shipped over random: mean {statistics.mean(gains):+.1f} points, "
          f"standard error {se:.1f}, smallest {min(gains):+.1f}, largest {max(gains):+.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

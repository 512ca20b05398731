"""Where does each small BERT's pre-training help? A learning curve with five seeds.

Chapter 5a's point 4 draws one learning curve (seed 0) of random weights against the shipped
small BERT. This script adds chapter 4's quick run with point 1c's recipe ("rescaled": attention
drawn again by `reinitialize_attention`, the embedding tables scaled to BERT's initial size by
`rescale_embeddings`; as saved, its pre-trained attention costs it about 16 points at 2,000
labels: `benchmarks/quick_run_levers.txt`) and repeats every point with seeds 0-4: fine-tune on
the first 200, 500 and 1,000 of chapter 5's quick-mode training reviews, each kind of weights
with its own schedule (`SMALL_BERT_SCHEDULES`), pick the epoch on the same 200 validation
reviews and score the same 1,000 test reviews. The 2,000-label point is the ten-seed table of
`benchmarks/quick_run_levers.txt` (seeds 0-4) and `benchmarks/small_bert_seeds.txt`.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_curve.py [n_seeds] [--arms random,rescaled,shipped]

``--arms`` picks a subset of the kinds of weights (`small_berts.KINDS`); the differences are
printed against random weights when they are among them. The output of a run is stored next to
this file (small_bert_curve.txt).
"""
from __future__ import annotations

import statistics
import sys
from dataclasses import replace

import torch

from small_berts import KINDS, load_small_berts, paired_difference, subset_option  # benchmarks/small_berts.py, beside this script

ARMS = ("random", "rescaled", "shipped")
SIZES = (200, 500, 1_000)


def main(n_seeds: int, chosen: tuple[str, ...] = ARMS) -> None:
    from bertedu.finetuning import (encode_splits, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_settings)
    from bertedu.settings import seed_everything

    base = finetune_settings(quick=True)
    small_berts = load_small_berts()
    tokenizer, config = small_berts.tokenizer, small_berts.config
    arms = {weights: small_bert_settings(base, config.max_position_embeddings, weights) for weights in chosen}
    truncation = next(iter(arms.values())).truncation  # the same for every kind: it depends on the config only
    train_set, validation_set, test_set = encode_splits(tokenizer, sentiment_splits(base), truncation)
    print(f"small BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}); "
          + "; ".join(f"{w}: {s.epochs} epochs, lr {s.learning_rate:g}" for w, s in arms.items())
          + f"; test accuracy on {len(test_set):,} reviews, seeds 0-{n_seeds - 1}")
    for n in SIZES:
        tests: dict[str, list[float]] = {weights: [] for weights in chosen}
        for seed in range(n_seeds):
            for weights, settings in arms.items():
                seed_everything(seed)
                model = small_berts.classifier(weights)
                result = run_finetuning(model, train_set[:n], validation_set, test_set, replace(settings, seed=seed),
                                        pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), progress=False)
                tests[weights].append(result.scores.accuracy)
        print(f"{n:,} labelled reviews")
        for weights, accuracies in tests.items():
            print(f"  {weights:13s} " + " ".join(f"{100 * a:5.1f}" for a in accuracies)
                  + f"   mean {100 * statistics.mean(accuracies):5.1f}")
        for weights in [w for w in chosen if w != "random"] if "random" in chosen else []:
            mean, se, smallest, largest = paired_difference(tests[weights], tests["random"])
            print(f"  {weights} - random: mean {mean:+.1f} points, standard error {se:.1f}, "
                  f"smallest {smallest:+.1f}, largest {largest:+.1f}", flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen_arms = subset_option(arguments, "--arms", KINDS)
    main(int(arguments[0]) if arguments else 5, chosen_arms)

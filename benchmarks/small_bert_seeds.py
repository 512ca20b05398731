"""Do the pre-trained small BERTs beat random weights by more than seed noise? Ten seeds each.

Chapter 5a fine-tunes the small BERT (2 layers, hidden 128) from random weights, from chapter
4's quick pre-training (`pretrained_small_bert()`; as saved, and with its attention
re-initialised: `reinitialize_attention`, "new-attention"; with new attention and its embedding
tables scaled to BERT's initial size: `rescale_embeddings`, "rescaled", chapter 5a's point 1d) and
from the shipped pre-trained weights (`shipped_small_bert()`) once, with seed 0. One run per arm
cannot tell a gain of a point or two from the run-to-run spread. This script repeats the rows with
seeds 0-9 on the same splits (chapter 5's quick mode: 2,000 train, 200 validation, 1,000 test reviews, the same data for every
seed, seed 0 is chapter 5a's run; the seed changes the random initial weights, the classifier
head's initial weights and the batch order), each with its schedule chosen on validation
(`SMALL_BERT_SCHEDULES`, `benchmarks/small_bert_sweep.txt`), and prints test accuracy per seed,
the mean, the standard deviation and the paired mean difference from random weights.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_seeds.py [n_seeds] [--arms random,rescaled,...]

The output of a run is stored next to this file (small_bert_seeds.txt). ``--arms`` runs only the
named arms, a comma-separated subset of random, pretrained, new-attention, rescaled, shipped that
includes random (every other arm is compared with it, seed by seed).
"""
from __future__ import annotations

import sys
from dataclasses import replace

import torch

from small_berts import KINDS, load_small_berts, subset_option, summary_lines  # benchmarks/small_berts.py, beside this script

ARMS = KINDS


def main(n_seeds: int, chosen: tuple[str, ...] = ARMS) -> None:
    from bertedu.finetuning import (encode_splits, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_settings)
    from bertedu.settings import seed_everything

    base = finetune_settings(quick=True)
    small_berts = load_small_berts()
    tokenizer, config = small_berts.tokenizer, small_berts.config
    arms = {weights: small_bert_settings(base, config.max_position_embeddings, weights) for weights in chosen}
    truncation = arms["random"].truncation
    train_set, validation_set, test_set = encode_splits(tokenizer, sentiment_splits(base), truncation)
    print(f"small BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}), {truncation.describe()}; "
          + "; ".join(f"{w}: {s.epochs} epochs, lr {s.learning_rate:g}" for w, s in arms.items())
          + "; 'pretrained' is chapter 4's quick run")
    print(f"{'seed':>4s} " + " ".join(f"{w + ' val':>17s} {'test':>6s}" for w in chosen))
    tests: dict[str, list[float]] = {weights: [] for weights in chosen}
    for seed in range(n_seeds):
        row = []
        for weights, settings in arms.items():
            seed_everything(seed)
            model = small_berts.classifier(weights)
            result = run_finetuning(model, train_set, validation_set, test_set, replace(settings, seed=seed),
                                    pad_id=tokenizer.pad_token_id, device=torch.device("cpu"),
                                    progress=False)  # as chapter 5a does
            tests[weights].append(result.scores.accuracy)
            row.append(f"{result.history.best['accuracy']:17.1%} {result.scores.accuracy:6.1%}")
        print(f"{seed:4d} " + " ".join(row), flush=True)
    print("\n".join(summary_lines(tests, [(weights, "random") for weights in chosen if weights != "random"])))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = subset_option(arguments, "--arms", ARMS)
    if "random" not in chosen:
        raise SystemExit("--arms must include random: every other arm is compared with it")
    main(int(arguments[0]) if arguments else 10, chosen)

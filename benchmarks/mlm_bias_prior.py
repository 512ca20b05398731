"""Does starting the MLM bias at the log token frequencies help the quick model transfer?

Chapter 4's quick run as it was on 2026-12-06 (2 layers, hidden 128, 600 steps, attention
started at random: ``local_attention=False``) is pre-trained twice, identically except for the
MLM head's bias at step 0: zeros (BERT's initialisation, chapter 4 until 2026-12-06) or the log
unigram frequencies of the training pairs' tokens (`init_mlm_bias`, chapter 4 since). For each
it reports the held-out MLM and NSP accuracy, the mean pairwise cosine of the word-piece embeddings (the special tokens left out; 0.0 for random weights), and the
test accuracy of chapter 5a's row 3 (quick-mode splits: 2,000 train, 200 validation, 1,000 test
reviews; the pre-trained schedule of `SMALL_BERT_SCHEDULES`) for seeds 0-4, beside random
weights of the same shape (row 2, its own schedule) on the same seeds, with the paired mean
difference from random weights.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/mlm_bias_prior.py [n_seeds]

The output of a run is stored next to this file (mlm_bias_prior.txt).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from small_berts import paired_difference  # benchmarks/small_berts.py, beside this script


def main(n_seeds: int) -> None:
    from bertedu.finetuning import (encode_splits, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_classifier, small_bert_settings, word_embedding_cosine)
    from bertedu.model import BertConfig
    from bertedu.pretraining import pretrain, pretraining_settings
    from bertedu.settings import seed_everything
    from bertedu.tokenization import load_fast_tokenizer

    quick = pretraining_settings(quick=True)  # as measured: 600 steps, BERT's random attention start
    quick = replace(quick, local_attention=False,
                    training=replace(quick.training, max_steps=600, eval_every=150, checkpoint_every=150))
    base = finetune_settings(quick=True)
    arms = {"random weights": None, "bias 0 (before)": False, "log-prior bias (now)": True}
    with tempfile.TemporaryDirectory() as tmp:
        folders, pretraining = {}, {}
        for name, prior in arms.items():
            if prior is None:
                continue
            run = pretrain(replace(quick, mlm_bias_prior=prior), output_dir=Path(tmp) / str(prior), progress=False)
            folders[name], pretraining[name] = run.output_dir, run.history.evals[-1]
        some_folder = next(iter(folders.values()))
        tokenizer = load_fast_tokenizer(some_folder)
        config = BertConfig.from_pretrained(some_folder)
        n_special = len(tokenizer.all_special_ids)  # [PAD], [UNK], [CLS], [SEP], [MASK] come first
        settings = {name: small_bert_settings(base, config.max_position_embeddings,
                                              "random" if prior is None else "pretrained") for name, prior in arms.items()}
        truncation = settings["random weights"].truncation
        splits = encode_splits(tokenizer, sentiment_splits(base), truncation)
        lines = [f"quick pre-training ({quick.training.max_steps} steps x {quick.training.batch_size} pairs, "
                 f"{config.num_hidden_layers} layers, hidden {config.hidden_size}), then chapter 5a's row 3 "
                 f"({truncation.describe()}); " + "; ".join(f"{n}: {s.epochs} epochs at {s.learning_rate:g}"
                                                           for n, s in settings.items()),
                 f"{'start of the MLM bias':24s} {'MLM acc':>8s} {'NSP acc':>8s} {'word-emb cosine':>16s}"]
        tests: dict[str, list[float]] = {name: [] for name in arms}
        for name, prior in arms.items():
            seed_everything(0)
            cosine = word_embedding_cosine(small_bert_classifier(config, folders.get(name)).bert, n_special)
            held_out = pretraining.get(name)
            accuracies = ("       -        -" if held_out is None
                          else f"{held_out['mlm_accuracy']:8.1%} {held_out['nsp_accuracy']:8.1%}")
            lines.append(f"{name:24s} {accuracies} {cosine:16.3f}")
            print(lines[-1], flush=True)
        lines.append(f"{'seed':>4s} " + " ".join(f"{name + ' val':>26s} {'test':>6s}" for name in arms))
        for seed in range(n_seeds):
            row = []
            for name, prior in arms.items():
                seed_everything(seed)
                model = small_bert_classifier(config, folders.get(name))  # random weights: None
                result = run_finetuning(model, *splits, replace(settings[name], seed=seed),
                                        pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), progress=False)
                tests[name].append(result.scores.accuracy)
                row.append(f"{result.history.best['accuracy']:26.1%} {result.scores.accuracy:6.1%}")
            lines.append(f"{seed:4d} " + " ".join(row))
            print(lines[-1], flush=True)
    for name, accuracies in tests.items():
        lines.append(f"{name:24s} test accuracy: mean {statistics.mean(accuracies):.1%}, "
                     f"standard deviation {100 * statistics.stdev(accuracies):.1f} points")
    for name in list(arms)[1:]:
        mean, se, smallest, largest = paired_difference(tests[name], tests["random weights"])
        lines.append(f"paired difference {name} - random: mean {mean:+.1f} points, "
                     f"standard error {se:.1f}, smallest {smallest:+.1f}, largest {largest:+.1f}")
    print("\n".join(lines[-5:]))
    (Path(__file__).resolve().parent / "mlm_bias_prior.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

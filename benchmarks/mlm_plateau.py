"""Why the quick run's MLM accuracy stalls near 11%, and what the stall is made of.

Two questions, on chapter 4's quick model and pairs (3,000 IMDb train reviews outside chapter
5's, 300 held out, fixed masks), every row from seed 0 with the log-prior MLM bias:

1. What does the accuracy count? ``mlm_accuracy_by_input`` splits it by what the input showed
   at the asked position: ``[MASK]`` (80%: only the context can tell), a random word (10%) or
   the word itself (10%: copying the input is right).
2. Which part of the model is slow to learn? Copy one part of the shipped small BERT (65
   minutes of pre-training, same architecture) into a fresh model, train the rest for the same
   steps, and see which part lifts the accuracy at ``[MASK]`` positions.

    BERTEDU_IMDB_ARCHIVE=... OMP_NUM_THREADS=2 python benchmarks/mlm_plateau.py [STEPS]

Writes mlm_plateau.txt next to this file (about 90 s per row at 600 steps on 2 CPU cores).
"""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

def copy_from_shipped(predicate):
    """A start that copies the shipped model's parameters whose names satisfy ``predicate``."""
    @torch.no_grad()
    def start(model: torch.nn.Module, shipped: dict) -> None:
        for key, value in model.state_dict().items():
            if predicate(key):
                value.copy_(shipped[key])
    return start


def local_attention(model: torch.nn.Module, shipped: dict) -> None:
    from bertedu.pretraining import init_local_attention

    init_local_attention(model, position_std=0.1)  # as measured (chapter 4's start until 2026-12-07)


# name: (what the fresh model starts with, start(model, shipped state dict) or None for BERT's own)
ROWS = [
    ("BERT's random start", "chapter 4's log-prior row: nothing copied", None),
    ("shipped positions", "position embeddings copied from the shipped model",
     copy_from_shipped(lambda n: "position_embeddings" in n)),
    ("shipped words", "word embeddings (= MLM decoder) copied", copy_from_shipped(lambda n: "word_embeddings" in n)),
    ("shipped attention", "Q, K, V of both layers and the positions copied",
     copy_from_shipped(lambda n: "attention.self" in n or "position_embeddings" in n)),
    ("local attention", "init_local_attention: chapter 4's start now", local_attention),
]


def split_line(name: str, change: str, overall: dict, split: dict) -> str:
    parts = " ".join(f"{split[kind]['accuracy']:9.1%}" for kind in ("[MASK]", "unchanged", "random word"))
    mlm = f"{overall['mlm_accuracy']:8.1%}" if overall else f"{'-':>8s}"
    loss = f"{overall['mlm_loss']:6.2f}" if overall else f"{'-':>6s}"
    return f"{name:20s} {change:50s} {mlm} {loss} {parts}"


def main(steps: int = 600) -> None:
    from bertedu.pretraining import (BertForPreTraining, evaluate_pretraining, mlm_accuracy_by_input,
                                     new_pretraining_model, prepare_pretraining_data, pretraining_settings,
                                     shipped_small_bert)
    from bertedu.training import TrainingConfig, train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    base = replace(pretraining_settings(quick=True), local_attention=False)
    _, train_data, validation_data = prepare_pretraining_data(base)
    shipped = BertForPreTraining.from_pretrained(shipped_small_bert())
    lines = [f"quick model, {steps} steps x 32 pairs x 128 tokens per trained row, {len(validation_data):,} held-out pairs; "
             "accuracy at the asked positions, split by what the input showed there",
             f"{'row':20s} {'start':50s} {'MLM acc':>8s} {'loss':>6s} {'[MASK]':>9s} {'unchanged':>9s} {'random':>9s}"]
    counts = mlm_accuracy_by_input(shipped, validation_data)
    total = sum(kind["count"] for kind in counts.values())
    share = ", ".join(f"{kind} {counts[kind]['count']:,} ({counts[kind]['count'] / total:.0%})" for kind in counts)
    source = shipped.state_dict()
    for name, change, start in ROWS:
        model = new_pretraining_model(base, train_data)
        if start is not None:
            start(model, source)
        config = TrainingConfig(learning_rate=base.training.learning_rate, max_steps=steps, batch_size=32,
                                warmup_ratio=base.training.warmup_ratio, progress=False)
        train(model, train_data, config, collate_fn=train_data.collate)
        lines.append(split_line(name, change, evaluate_pretraining(model, validation_data),
                                mlm_accuracy_by_input(model, validation_data)))
        print(lines[-1], flush=True)
    lines.append(split_line("shipped (reference)", "the shipped model itself, not trained here",
                            evaluate_pretraining(shipped, validation_data), counts))
    lines.append(f"(asked positions: {share})")
    (HERE / "mlm_plateau.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))

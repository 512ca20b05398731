"""The budget recipe for chapter 4, one change at a time, on the same budget.

Each row trains the quick model (2 layers, hidden 128, batch 32 x 128) from the same initial
weights on the same pairs (3,000 IMDb train reviews outside chapter 5's) for the same number
of optimizer steps, and reports the held-out MLM and NSP accuracy (300 held-out reviews, fixed
masks) and the CPU seconds the steps took (process time of one thread, so other jobs on a
shared machine do not count). Rows with the same CPU cost per step are compared at the same
budget directly; the dropout and dense-head rows cost more per step (the seconds column).

    BERTEDU_IMDB_ARCHIVE=... OMP_NUM_THREADS=1 python benchmarks/pretraining_recipe.py [STEPS] [--only "ROW|ROW"]

(OMP_NUM_THREADS=2 runs it faster; the CPU seconds then add up both threads.) ``--only`` runs the
named rows and keeps the stored results of the others (same steps only).

Writes pretraining_recipe.txt (the table) and pretraining_recipe.json (the curves, for
chapter 4's plot) next to this file.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent

# name: (what changes, overrides of the settings, learning rate, warm-up ratio)
# Every override is explicit (LayerNorm placement, dropout, the MLM bias's start), so a row
# measures the same thing whatever the chapter's own settings (the base) are. The chapter used
# the one-cycle row from 2026-12-03, the log-prior row from 2026-12-06 (morning) and the
# local-attention row from 2026-12-06 (positions at 0.1) and the "local, 0.05" row since
# 2026-12-07; "chapter 4 before" is the setting it used first (pre-LN, lr 3e-3).
# The two rows after the local-attention one start only one half of it ("init" holds the
# arguments of init_local_attention, every one explicit; position_std None keeps BERT's random
# positions, query_key_scale 0 its random query and key matrices).
POST_LN = dict(pre_layer_norm=False, dropout=0.0, mlm_bias_prior=False, local_attention=False)
PRE_LN = dict(pre_layer_norm=True, dropout=0.0, mlm_bias_prior=False, local_attention=False)
PRIOR = POST_LN | dict(mlm_bias_prior=True)
ROWS = [
    ("first recipe", "post-LN, dropout 0.1, lr 2e-3, warm-up 10%, MLM+NSP", POST_LN | dict(dropout=0.1), 2e-3, 0.1),
    ("no dropout", "as above, dropout 0 (Cramming)", POST_LN, 2e-3, 0.1),
    ("one-cycle", "no dropout, warm-up 50% then decay", POST_LN, 2e-3, 0.5),
    ("higher lr", "no dropout, peak lr 4e-3", POST_LN, 4e-3, 0.1),
    ("pre-LN", "no dropout, pre-LayerNorm, peak lr 4e-3", PRE_LN, 4e-3, 0.1),
    ("pre-LN, MLM only", "as pre-LN, without the NSP loss", PRE_LN | dict(nsp=False), 4e-3, 0.1),
    ("dense head", "no dropout, MLM head on all 128 positions", POST_LN, 2e-3, 0.1),
    ("chapter 4 before", "pre-LN, no dropout, lr 3e-3 (until 2026-12-03)", PRE_LN, 3e-3, 0.1),
    ("log-prior bias", "one-cycle, MLM bias starts at log frequencies", PRIOR, 2e-3, 0.5),
    ("prior, higher lr", "as log-prior bias, peak lr 4e-3", PRIOR, 4e-3, 0.5),
    ("local attention", "log-prior, attention starts at the neighbours (0.1)",
     PRIOR | dict(init=dict(position_std=0.1)), 2e-3, 0.5),
    ("sinusoids only", "log-prior, sinusoidal positions, random Q and K",
     PRIOR | dict(init=dict(position_std=0.1, query_key_scale=0.0)), 2e-3, 0.5),
    ("Q = K = I only", "log-prior, Q = K = I + noise, random positions", PRIOR | dict(init=dict(position_std=None)),
     2e-3, 0.5),
    ("local, 0.05", "as local attention, positions at 0.05 (now)", PRIOR | dict(init=dict(position_std=0.05)),
     2e-3, 0.5),
]


class DenseHead(torch.nn.Module):
    """Wrap BertForPreTraining so the MLM head scores every position, then keeps the masked ones."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, labels=None, next_sentence_label=None, **inputs):
        out = self.model.bert(**inputs)
        logits = self.model.cls.predictions(out.last_hidden_state)  # (B, T, V): the 85% wasted
        selected = labels != -100
        loss = F.cross_entropy(logits[selected].float(), labels[selected])
        if next_sentence_label is not None:
            loss = loss + F.cross_entropy(self.model.cls.seq_relationship(out.pooler_output), next_sentence_label)
        return {"loss": loss}


def row_line(name: str, change: str, curve: dict) -> str:
    """One line of the table from a row's curve (``{"cpu_seconds": ..., "evals": [...]}``)."""
    last = curve["evals"][-1]
    return f"{name:18s} {change:52s} {last['mlm_accuracy']:8.1%} {last['nsp_accuracy']:8.1%} {curve['cpu_seconds']:7.0f}"


def main(steps: int = 600, only: set[str] | None = None) -> None:
    from bertedu.pretraining import (evaluate_pretraining, init_local_attention, new_pretraining_model,
                                     prepare_pretraining_data, pretraining_settings)
    from bertedu.training import TrainingConfig, train

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # CPU seconds count every thread
    base = pretraining_settings(quick=True)
    _, train_data, validation_data = prepare_pretraining_data(base)
    evaluate_every = max(1, steps // 6)
    lines = [f"quick model, {steps} steps x 32 pairs x 128 tokens each row, {len(train_data):,} training pairs, "
             f"{len(validation_data):,} held-out pairs; {torch.get_num_threads()} CPU thread(s); "
             "seconds = CPU time of the steps, all threads",
             f"{'row':18s} {'change':52s} {'MLM acc':>8s} {'NSP acc':>8s} {'CPU s':>7s}"]
    stored = json.loads((HERE / "pretraining_recipe.json").read_text()) if only else {}
    curves = {}
    for name, change, overrides, rate, warmup in ROWS:
        if only is not None and name not in only:
            if name in stored and stored[name]["evals"][-1]["step"] == steps:
                curves[name] = stored[name]
                lines.append(row_line(name, change, stored[name]))
            continue
        overrides = dict(overrides)
        init = overrides.pop("init", None)
        settings = replace(base, **overrides)
        train_data.nsp = settings.nsp
        model = new_pretraining_model(settings, train_data)  # seed 0, as every row
        if init is not None:
            init_local_attention(model, **init)
        trained = DenseHead(model) if name == "dense head" else model
        config = TrainingConfig(learning_rate=rate, max_steps=steps, batch_size=32, warmup_ratio=warmup,
                                eval_every=evaluate_every, eval_at_start=True, progress=False)
        cpu = [0.0]
        started = [time.process_time()]

        def clock(step, history):  # CPU time of training only (not the evaluations)
            cpu[0] += time.process_time() - started[0]
            started[0] = time.process_time()

        def evaluate(m):
            result = evaluate_pretraining(model, validation_data)
            started[0] = time.process_time()
            return result

        history = train(trained, train_data, config, collate_fn=train_data.collate, evaluate=evaluate,
                        callbacks=[clock])
        curves[name] = {"change": change, "cpu_seconds": cpu[0], "evals": history.evals}
        lines.append(row_line(name, change, curves[name]))
        print(lines[-1], flush=True)
    train_data.nsp = True
    (HERE / "pretraining_recipe.txt").write_text("\n".join(lines) + "\n")
    (HERE / "pretraining_recipe.json").write_text(json.dumps(curves, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = None
    if "--only" in args:
        at = args.index("--only")
        chosen = set(args[at + 1].split("|"))
        unknown = chosen - {row[0] for row in ROWS}
        if unknown:
            raise SystemExit(f"unknown rows {sorted(unknown)}; the rows are {[row[0] for row in ROWS]}")
        del args[at:at + 2]
    main(*(int(a) for a in args[:1]), only=chosen)

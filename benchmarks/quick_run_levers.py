"""Can chapter 4's quick run be changed so that its small BERT fine-tunes no worse than random weights?

Chapter 5a's small-BERT benchmarks change only what happens *after* pre-training (new attention,
rescaled embeddings, pooling, schedules, ...). This script changes the quick run itself: each
variant is chapter 4's quick pre-training (`pretraining_settings(quick=True)`: 2 layers, hidden
128, 1,200 steps of 32 x 128 tokens, attention started at the neighbours) with one thing changed,
trained from scratch in a temporary folder; then chapter 5a's small BERT is fine-tuned on it for
seeds 0..n-1 (quick-mode splits: 2,000 train, 200 validation, 1,000 test reviews), in two ways:

* "as saved": chapter 5a's row 3 (the weights as pre-training left them, its schedule);
* "rescaled": new attention and the embedding tables scaled to BERT's initial size
  (`reinitialize_attention`, `rescale_embeddings`; chapter 5a's points 1c-1d), its schedule.

Random weights of the same shape (row 2, its schedule) run on the same seeds, and every arm is
reported as its paired mean difference from them. The variants:

* "large positions": chapter 4's quick run until 2026-12-07, sinusoidal positions at standard
  deviation 0.1 (the control of the first table; named "chapter 4 now" there);
* "local layer 1 only": W_Q = W_K = I + noise in the first layer only (the second starts like
  BERT, so its `[CLS]` starts by reading the whole review); sinusoidal positions at 0.1;
* "local head 1 only": W_Q = W_K = I + noise for the first of the two heads in each layer, the
  second head's rows random (a head free to look anywhere from the start);
* "small positions": sinusoidal positions at standard deviation 0.02 (BERT's word scale) instead
  of 0.1, Q = K = I as before (chapter 5a's point 1d: the run's embeddings end up larger than BERT's);
  "medium positions": the same at 0.05, chapter 4's start since 2026-12-07 (this script's third table);
* "task reviews": positions at 0.1, and the 3,000 pre-training reviews are chapter 5's 2,000 training
  reviews (their text, not their labels: task-adaptive pre-training, Gururangan et al. 2020) and
  1,000 others; never its validation or test reviews.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/quick_run_levers.py [n_seeds] [--variants a,b] [--arms rescaled] [--sweep]

``--variants`` and ``--arms`` run a comma-separated subset (random weights always run: every arm is
compared with them, seed by seed). ``--sweep`` first gives each chosen arm of each variant its own
schedule, as `small_bert_sweep.py` chose chapter 5's: 2 or 4 epochs x 3e-4, 5e-4, 1e-3 (3e-3 left
out: random weights and chapter 4's earlier run fell to chance there), fine-tuned with seed 0,
the best validation accuracy wins (the first in that order on a tie); the seeds then run with the
winner. Random weights keep their schedule (row 2's, from that sweep).

The output of a run is stored next to this file (quick_run_levers.txt). The variants are
patched into `bertedu.pretraining` for the length of one run (`unittest.mock.patch.object`):
the package keeps chapter 4's recipe.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import torch

from small_berts import paired_difference, subset_option  # benchmarks/small_berts.py, beside this script

VARIANTS = ("large positions", "local layer 1 only", "local head 1 only", "small positions", "medium positions",
            "task reviews")
ARMS = ("as saved", "rescaled")
ARM_KINDS = {"random": "random", "as saved": "pretrained", "rescaled": "rescaled"}  # arm -> SMALL_BERT_SCHEDULES key
SWEEP = tuple((epochs, rate) for epochs in (2, 4) for rate in (3e-4, 5e-4, 1e-3))  # small_bert_sweep.py's, less 3e-3


def identity_start(model, layers: set[int] | None = None, heads: set[int] | None = None) -> None:
    """W_Q = W_K = I + N(0, 0.02^2) as `init_local_attention` sets them, but only in ``layers``
    (None: all) and only on the output rows of ``heads`` (None: all); other rows stay random."""
    config = model.config
    d = config.hidden_size // config.num_attention_heads
    eye = torch.eye(config.hidden_size)
    with torch.no_grad():
        for index, layer in enumerate(model.bert.encoder.layer):
            if layers is not None and index not in layers:
                continue
            for linear in (layer.attention.self.query, layer.attention.self.key):
                weight = torch.randn_like(linear.weight) * config.initializer_range  # (H, H)
                for head in range(config.num_attention_heads) if heads is None else heads:
                    weight[head * d:(head + 1) * d] += eye[head * d:(head + 1) * d]
                linear.weight.copy_(weight)


def variant_patches(name: str, pretraining) -> list:
    """The patches of ``bertedu.pretraining`` that make chapter 4's quick run into variant ``name``."""
    original_init, original_corpus = pretraining.init_local_attention, pretraining.pretraining_corpus

    # The stand-ins ignore the package's arguments (chapter 4 passes none): each variant sets its own.
    def start(layers=None, heads=None):
        def init(model, *_, **__):
            original_init(model, 0.1, 0.0)  # the sinusoidal positions only, at 0.1 as measured
            identity_start(model, layers, heads)
        return init

    def positions(std):
        return lambda model, *_, **__: original_init(model, std, 1.0)  # W_Q = W_K = I + noise, as in chapter 4

    def corpus_with_task_text(n_reviews, n_validation, seed=0):
        from bertedu.data import ReviewSet
        from bertedu.finetuning import finetune_settings, sentiment_splits
        rest, validation = original_corpus(n_reviews, n_validation, seed)  # held-out reviews unchanged
        task = sentiment_splits(finetune_settings(quick=True))[0]  # chapter 5's 2,000 training reviews
        return ReviewSet(list(task) + list(rest)[:n_reviews - len(task)], "train"), validation

    patches = {
        "large positions": {"init_local_attention": positions(0.1)},
        "local layer 1 only": {"init_local_attention": start(layers={0})},
        "local head 1 only": {"init_local_attention": start(heads={0})},
        "small positions": {"init_local_attention": positions(0.02)},
        "medium positions": {"init_local_attention": positions(0.05)},
        "task reviews": {"init_local_attention": positions(0.1), "pretraining_corpus": corpus_with_task_text},
    }[name]
    return [mock.patch.object(pretraining, attribute, value) for attribute, value in patches.items()]


def paired(tests: list[float], reference: list[float]) -> str:
    if not tests:
        return "not run"
    mean, se, _, _ = paired_difference(tests, reference)
    return f"{statistics.mean(tests):6.1%} {mean:+5.1f} ({se:.1f})"


def main(n_seeds: int, chosen: tuple[str, ...], chosen_arms: tuple[str, ...] = ARMS, sweep: bool = False) -> None:
    import bertedu.pretraining as pretraining
    from bertedu.finetuning import (encode_splits, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_of_kind, small_bert_settings)
    from bertedu.model import BertConfig
    from bertedu.settings import seed_everything
    from bertedu.tokenization import load_fast_tokenizer

    quick = pretraining.pretraining_settings(quick=True)
    base = finetune_settings(quick=True)
    random_tests: list[float] = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            folder = Path(tmp) / str(len(rows))
            patches = variant_patches(name, pretraining)
            started = time.perf_counter()
            for patch in patches:
                patch.start()
            try:
                run = pretraining.pretrain(quick, output_dir=folder, progress=False)
            finally:
                for patch in patches:
                    patch.stop()
            seconds, final = time.perf_counter() - started, run.history.evals[-1]
            if not rows:  # every variant has the same vocabulary and config: encode the splits once
                tokenizer, config = load_fast_tokenizer(folder), BertConfig.from_pretrained(folder)
                schedules = {arm: small_bert_settings(base, config.max_position_embeddings, kind)
                             for arm, kind in ARM_KINDS.items()}
                splits = encode_splits(tokenizer, sentiment_splits(base), schedules["random"].truncation)
                print(f"quick run: {quick.training.max_steps} steps x {quick.training.batch_size} pairs x "
                      f"{quick.max_seq_length} tokens; chapter 5a's small BERT, "
                      f"{schedules['random'].truncation.describe()}; " + "; ".join(
                          f"{arm}: {s.epochs} epochs at {s.learning_rate:g}" for arm, s in schedules.items()))

            def fine_tune(arm: str, seed: int, schedule):
                seed_everything(seed)
                model = small_bert_of_kind(ARM_KINDS[arm], config, folder)
                return run_finetuning(model, *splits, replace(schedule, seed=seed),
                                      pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), progress=False)

            chosen_schedules = dict(schedules)
            for arm in chosen_arms if sweep else ():
                best = None
                for epochs, rate in SWEEP:  # seed 0, validation only: the test reviews stay untouched
                    schedule = replace(schedules[arm], epochs=epochs, learning_rate=rate)
                    accuracy = fine_tune(arm, 0, schedule).history.best["accuracy"]
                    print(f"  {name}, {arm}, sweep: {epochs} epochs at {rate:g}: {accuracy:.1%} val", flush=True)
                    if best is None or accuracy > best[0]:
                        best = (accuracy, schedule)
                chosen_schedules[arm] = best[1]
                print(f"  {name}, {arm}: {best[1].epochs} epochs at {best[1].learning_rate:g} won", flush=True)
            tests: dict[str, list[float]] = {arm: [] for arm in ARMS}
            for seed in range(n_seeds):
                arms = (("random",) if len(random_tests) <= seed else ()) + chosen_arms
                line = []
                for arm in arms:
                    result = fine_tune(arm, seed, chosen_schedules[arm])
                    (random_tests if arm == "random" else tests[arm]).append(result.scores.accuracy)
                    line.append(f"{arm} {result.history.best['accuracy']:.1%} val {result.scores.accuracy:.1%} test")
                print(f"  {name}, seed {seed}: " + "; ".join(line), flush=True)
            rows.append(f"{name:20s} {final['mlm_accuracy']:7.1%} {final['nsp_accuracy']:7.1%} {seconds:6.0f} "
                        f"{paired(tests['as saved'], random_tests):>20s} {paired(tests['rescaled'], random_tests):>20s}")
    print(f"random weights (row 2): test accuracy {statistics.mean(random_tests):.1%} over seeds 0-{n_seeds - 1}")
    print(f"{'variant':20s} {'MLM acc':>7s} {'NSP acc':>7s} {'wall s':>6s} {'as saved: test, diff (SE)':>26s} "
          f"{'rescaled: test, diff (SE)':>26s}")
    print("\n".join(rows))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = subset_option(arguments, "--variants", VARIANTS)
    chosen_arms = subset_option(arguments, "--arms", ARMS)
    sweep = "--sweep" in arguments
    arguments = [a for a in arguments if a != "--sweep"]
    main(int(arguments[0]) if arguments else 5, chosen, chosen_arms, sweep)

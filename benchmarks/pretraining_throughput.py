"""Pre-training throughput, before and after chapter 4's rebuild (quick mode, CPU).

1. Preparation of the full pre-training corpus (22,300 IMDb train reviews -> masked pairs):
   today's code (commit 148f3f0: one `encode_pair` per pair, four small tensors each) against
   the new `encode_pairs` (one table) with the masks of a whole epoch drawn in one call.
2. Training tokens/s of the quick model (2 layers, hidden 128, batch 32 x 128): today's data
   path and model (masks drawn per item, dropout 0.1) against the new one (epoch masks,
   no dropout). The two runs alternate (old, new, old, new) so a busy machine hurts both alike.

    BERTEDU_IMDB_ARCHIVE=... OMP_NUM_THREADS=2 python benchmarks/pretraining_throughput.py

Output stored next to this file (pretraining_throughput.txt).
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

TODAY = "148f3f0"  # the commit before the rebuild
REPO = Path(__file__).resolve().parents[1]


def module_at(commit: str, path: str, name: str):
    """Import one file of the package as it was at ``commit`` (read with ``git show``)."""
    source = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from bertedu.pretraining import (BertForPreTraining, make_pairs, pretraining_corpus, pretraining_settings,
                                     tokenize_documents)
    from bertedu.pretraining_data import PretrainingDataset, PretrainingVocab
    from bertedu.tokenization import imdb_wordpiece_vocab, load_fast_tokenizer
    from bertedu.training import TrainingConfig, train

    old = module_at(TODAY, "bertedu/pretraining_data.py", "old_pretraining_data")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; the machine was shared with other "
          "jobs, so absolute numbers are inflated; the ratios are what counts")
    tokenizer = load_fast_tokenizer(imdb_wordpiece_vocab(8000))
    vocab = PretrainingVocab.from_tokenizer(tokenizer)
    train_reviews, _ = pretraining_corpus(None, 500)

    # 1. Preparation of the full corpus.
    started = time.perf_counter()
    documents = tokenize_documents(train_reviews.texts, tokenizer)
    tokenize_s = time.perf_counter() - started
    started = time.perf_counter()
    pairs = make_pairs(documents, max_seq_length=128, seed=0)
    pairs_s = time.perf_counter() - started
    timings = {}
    for name, build in (("today", lambda: old.PretrainingDataset(pairs, vocab, max_seq_length=128)),
                        ("new", lambda: PretrainingDataset(pairs, vocab, max_seq_length=128))):
        started = time.perf_counter()
        data = build()
        if name == "today":  # today the masks are drawn item by item, as the loop reads them
            for i in range(len(data)):
                data[i]
        timings[name] = time.perf_counter() - started
    print(f"\n1. Preparing {len(train_reviews):,} reviews -> {len(pairs):,} pairs")
    print(f"   sentences + fast tokenizer (batched): {tokenize_s:6.1f} s   (same code before and after)")
    print(f"   packing pairs (make_pairs):            {pairs_s:6.1f} s   (same code before and after)")
    print(f"   encoding + one epoch of masks: today {timings['today']:6.1f} s, new {timings['new']:6.1f} s "
          f"({timings['today'] / timings['new']:.0f}x)")

    # 2. Training throughput of the quick model.
    settings = pretraining_settings(quick=True)
    subset = pairs[:4_000]
    datasets = {"today": old.PretrainingDataset(subset, vocab, max_seq_length=128),
                "new": PretrainingDataset(subset, vocab, max_seq_length=128)}
    steps = 40
    config = TrainingConfig(learning_rate=2e-3, max_steps=steps, batch_size=32, warmup_ratio=0.1, progress=False)
    results = {"today": [], "new": []}
    for _ in range(2):
        for name in ("today", "new"):
            dropout = 0.1 if name == "today" else 0.0
            torch.manual_seed(0)
            model = BertForPreTraining(replace(settings, pre_layer_norm=name == "new").model_config(dropout=dropout))
            data = datasets[name]
            collate = torch.utils.data.default_collate if name == "today" else data.collate
            started = time.perf_counter()
            train(model, data, config, collate_fn=collate)
            results[name].append(steps * 32 * 128 / (time.perf_counter() - started))
    best = {name: max(values) for name, values in results.items()}
    print(f"\n2. Training the quick model ({steps} steps of 32 x 128 tokens, padding included), best of 2:")
    print(f"   today (masks per item, dropout 0.1, post-LN): {best['today']:8,.0f} tokens/s")
    print(f"   new (epoch masks, no dropout, pre-LN):        {best['new']:8,.0f} tokens/s  ({best['new'] / best['today']:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())

"""Pre-training throughput, before and after chapter 4's rebuild (quick mode, CPU).

1. Preparation of the full pre-training corpus (22,300 IMDb train reviews -> masked pairs):
   today's code (commit 148f3f0: one `encode_pair` per pair, four small tensors each) against
   the new `encode_pairs` (one table) with the masks of a whole epoch drawn in one call.
2. Training tokens/s of the quick model (2 layers, hidden 128, batch 32 x 128): today's data
   path and model (masks drawn per item, dropout 0.1) against the new one (epoch masks,
   no dropout), and the new one with bf16 autocast (`TrainingConfig.cpu_bf16`, for CPUs with
   native bf16) twice: attention by the fused CPU flash kernel `F.scaled_dot_product_attention`
   picks, and by SDPA's plain "math" kernel, which `pretrain` uses under `cpu_bf16`
   (`settings.cpu_bf16_attention`, adopted after this benchmark). Eleven rounds of the four rows;
   each row's speed-up is the median over rounds of its ratio to the same round's "today" row, so
   the VM's drift from round to round (often 20%) cancels.
3. A profile of one step of the new path: what share of its time is matrix products, and what
   share the fused attention kernel.

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
from statistics import median

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


def tokens_per_second(rows: dict[str, tuple], settings, steps: int, rounds: int) -> dict[str, list[float]]:
    """Train the quick model (post-LN) ``steps`` steps of 32 x 128 tokens per row, the rows one
    after the other in each of ``rounds`` rounds: row label -> tokens/s, one per round.

    ``rows``: label -> (data, its collate function, dropout, bf16 autocast, SDPA's math kernel
    for attention). Interleaving puts a round's rows close in time, so dividing each by the same
    round's first row cancels most of the VM's drift from minute to minute.
    """
    from bertedu.pretraining import BertForPreTraining
    from bertedu.settings import cpu_bf16_attention
    from bertedu.training import TrainingConfig, train

    results = {name: [] for name in rows}
    for _ in range(rounds):
        for name, (data, collate, dropout, bf16, math_kernel) in rows.items():
            config = TrainingConfig(learning_rate=2e-3, max_steps=steps, batch_size=32, warmup_ratio=0.1,
                                    progress=False, cpu_bf16=bf16)
            torch.manual_seed(0)
            model = BertForPreTraining(replace(settings, pre_layer_norm=False).model_config(dropout=dropout))
            started = time.perf_counter()
            with cpu_bf16_attention(torch.device("cpu"), math_kernel):  # a no-op when False
                train(model, data, config, collate_fn=collate)
            results[name].append(steps * 32 * 128 / (time.perf_counter() - started))
    return results


def main() -> None:
    from bertedu.pretraining import (BertForPreTraining, make_pairs, pretraining_corpus, pretraining_settings,
                                     tokenize_documents)
    from bertedu.pretraining_data import PretrainingDataset, PretrainingVocab
    from bertedu.tokenization import imdb_wordpiece_vocab, load_fast_tokenizer
    from bertedu.settings import native_cpu_bf16

    old = module_at(TODAY, "bertedu/pretraining_data.py", "old_pretraining_data")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
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
    today_data = old.PretrainingDataset(subset, vocab, max_seq_length=128)
    new_data = PretrainingDataset(subset, vocab, max_seq_length=128)
    today, fused, math = ("today (masks per item, dropout 0.1)", "new + bf16 autocast, fused attention kernel",
                          "new + bf16 autocast, math kernel (cpu_bf16)")
    # label: (data, its collate function, dropout, bf16 autocast, SDPA's math kernel for attention)
    rows = {today: (today_data, torch.utils.data.default_collate, 0.1, False, False),
            "new (epoch masks, no dropout)": (new_data, new_data.collate, 0.0, False, False),
            fused: (new_data, new_data.collate, 0.0, True, False),
            math: (new_data, new_data.collate, 0.0, True, True)}
    steps, rounds = 40, 11
    results = tokens_per_second(rows, settings, steps, rounds)
    # A round's rows run back to back, so their ratio to that round's "today" cancels most of the
    # VM's drift from round to round; the median over rounds drops the odd disturbed row.
    print(f"\n2. Training the quick model ({steps} steps of 32 x 128 tokens, padding included), {rounds} rounds:")
    print(f"   {'':47s} {'tokens/s (median)':>17s}  {'x today (median of rounds; range)':>34s}")
    for name, values in results.items():
        ratios = [value / old_value for value, old_value in zip(values, results[today])]
        ratio = "" if name == today else f"{median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        print(f"   {name + ':':47s} {median(values):17,.0f}  {ratio:>34s}")
    math_gain = [m / f for m, f in zip(results[math], results[fused])]
    print(f"   math kernel / fused kernel under bf16: {median(math_gain):.2f}x (rounds {min(math_gain):.2f}-"
          f"{max(math_gain):.2f}); native bf16 on this CPU: {native_cpu_bf16()}")

    # 3. Where a step's time goes: the model's own arithmetic, not the data path.
    from torch.profiler import profile

    model = BertForPreTraining(replace(settings, pre_layer_norm=False).model_config())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = new_data.collate([new_data[i] for i in range(32)])
    with profile() as profiler:
        for _ in range(5):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    matmul = sum(event.self_cpu_time_total for event in events if event.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    fused = sum(event.self_cpu_time_total for event in events if "scaled_dot_product" in event.key)
    print(f"\n3. One step of the new path, profiled (5 steps): matrix products take {matmul / total:.0%} of the "
          f"CPU time and the fused attention kernel (forward and backward) {fused / total:.0%}: the step is "
          "arithmetic; what is left to gain on a CPU is in the matrix products, not in the data path")

if __name__ == "__main__":
    sys.exit(main())

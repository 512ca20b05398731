"""Why the quick pre-training step stops short of 2x today's tokens/s in float32 (2 CPU cores).

``pretraining_throughput.txt`` measures the rebuilt data path at 1.3x "today's" tokens/s in
float32 and 1.6x to 2.1x with bf16 autocast on a CPU with native bf16; the issue asks for 2x.
This script asks what float32 leaves to gain at all, on the machine it runs on:

1. The arithmetic of one training step of the quick model (batch 32 x 128 = 4,096 tokens):
   floating-point operations counted by ``torch.utils.flop_counter.FlopCounterMode``
   (forward and backward).
2. Tokens/s of today's path (commit 148f3f0's data, dropout 0.1) and the new one (epoch masks,
   no dropout), ``train()`` as ``pretraining_throughput.py`` runs it, rounds interleaved; the
   step time that 2x today would need.
3. The step's matrix products, with the shapes the profiler records for one step, each timed
   alone (``torch.mm``/``addmm``/``bmm`` on tensors of those shapes, median of repeats), and
   this CPU's float32 rate on one large product (2,048 cubed) for scale.
4. The bound: the matrix products alone, against the step time 2x would need.

    BERTEDU_IMDB_ARCHIVE=... OMP_NUM_THREADS=2 python benchmarks/pretraining_roofline.py

Output stored next to this file (pretraining_roofline.txt).
"""
from __future__ import annotations

import platform
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from statistics import median

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretraining_throughput import TODAY, module_at, tokens_per_second  # noqa: E402  (the same 'today' and rounds)
from timing import median_seconds  # noqa: E402  (benchmarks/timing.py, beside this script)

STEPS, ROUNDS, BATCH, LENGTH = 40, 5, 32, 128
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def profile_step(model, batch, optimizer) -> tuple[Counter, Counter]:
    """One training step (forward, backward, AdamW) under the profiler: (op, input shapes) ->
    calls of its matrix products, and every other op -> its own CPU milliseconds."""
    from torch.profiler import profile

    def step():
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    with profile(record_shapes=True) as profiler:
        step()
    calls, others = Counter(), Counter()
    for event in profiler.events():
        if event.name in MATMULS:
            calls[(event.name, tuple(tuple(s) for s in event.input_shapes if s))] += 1
        else:
            others[event.name] += event.self_cpu_time_total / 1e3
    return calls, others


def replay(op: str, shapes: tuple) -> float:
    """Seconds of one call of ``op`` on random float32 tensors of ``shapes`` (contiguous)."""
    tensors = [torch.randn(*shape) for shape in shapes]
    fn = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm}[op]
    return median_seconds(lambda: fn(*tensors))


def main() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from bertedu.pretraining import BertForPreTraining, make_pairs, pretraining_corpus, pretraining_settings, tokenize_documents
    from bertedu.pretraining_data import PretrainingDataset, PretrainingVocab
    from bertedu.settings import native_cpu_bf16
    from bertedu.tokenization import imdb_wordpiece_vocab, load_fast_tokenizer

    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"native bf16: {native_cpu_bf16()}")
    old = module_at(TODAY, "bertedu/pretraining_data.py", "old_pretraining_data")
    tokenizer = load_fast_tokenizer(imdb_wordpiece_vocab(8000))
    vocab = PretrainingVocab.from_tokenizer(tokenizer)
    train_reviews, _ = pretraining_corpus(None, 500)
    pairs = make_pairs(tokenize_documents(train_reviews.texts[:1_500], tokenizer), max_seq_length=LENGTH, seed=0)[:4_000]
    settings = replace(pretraining_settings(quick=True), pre_layer_norm=False)
    new_data = PretrainingDataset(pairs, vocab, max_seq_length=LENGTH)
    batch = new_data.collate([new_data[i] for i in range(BATCH)])
    tokens = BATCH * LENGTH

    # 1. Arithmetic of one step.
    model = BertForPreTraining(settings.model_config())
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    flops = counter.get_total_flops()
    # FlopCounterMode has no formula for the CPU attention kernel: QK^T and PV, 2 B T^2 H
    # multiply-adds a layer forward, twice that backward.
    attention = 12 * BATCH * LENGTH ** 2 * settings.hidden_size * settings.num_hidden_layers
    print(f"\n1. One training step of the quick model ({settings.num_hidden_layers} layers, hidden "
          f"{settings.hidden_size}; batch {BATCH} x {LENGTH} = {tokens:,} tokens): {flops / 1e9:.2f} GFLOP in "
          f"matrix products (forward + backward, FlopCounterMode) and {attention / 1e9:.2f} in attention's "
          "two products (by hand: FlopCounterMode does not count the CPU attention kernel)")

    # 2. Tokens/s today and new, rounds interleaved (the VM drifts from minute to minute).
    today_data = old.PretrainingDataset(pairs, vocab, max_seq_length=LENGTH)
    rows = {"today (masks per item, dropout 0.1)": (today_data, torch.utils.data.default_collate, 0.1, False, False),
            "new (epoch masks, no dropout)": (new_data, new_data.collate, 0.0, False, False)}
    speeds = tokens_per_second(rows, settings, STEPS, ROUNDS)  # float32, as pretraining_throughput.py's rows
    today, new = (median(values) for values in speeds.values())
    ratio = median(n / t for t, n in zip(*speeds.values()))  # today's, new's
    target_ms = 1e3 * tokens / (2 * today)
    print(f"\n2. Tokens/s, {ROUNDS} rounds of {STEPS} steps (median): today {today:,.0f} "
          f"({1e3 * tokens / today:.0f} ms a step), new {new:,.0f} ({1e3 * tokens / new:.0f} ms a step, "
          f"{ratio:.2f}x today, median of rounds)")
    print(f"   2x today: {2 * today:,.0f} tokens/s, a whole step (data, forward, backward, AdamW) in "
          f"{target_ms:.0f} ms; the new step runs its arithmetic at {(flops + attention) * new / tokens / 1e9:.0f} GFLOP/s")

    # 3. The matrix products of one step, each timed alone.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    calls, others = profile_step(model, batch, optimizer)
    seconds = {key: replay(*key) for key in calls}
    total_ms = 1e3 * sum(seconds[key] * n for key, n in calls.items())
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    large = 2 * 2048 ** 3 / median_seconds(lambda: torch.mm(a, b), repeats=10) / 1e9
    print(f"\n3. The step's {sum(calls.values())} matrix products ({len(calls)} shapes, recorded by the profiler), "
          f"each timed alone: {total_ms:.0f} ms a step, {flops / 1e9:.2f} GFLOP at "
          f"{flops / total_ms / 1e6:.0f} GFLOP/s; one 2,048-cubed product: {large:.0f} GFLOP/s")
    print("   the five slowest shapes (op, shapes, calls, ms a step):")
    for key in sorted(calls, key=lambda k: -seconds[k] * calls[k])[:5]:
        print(f"     {key[0]:11s} {' x '.join(str(list(s)) for s in key[1]):34s} {calls[key]:3d} "
              f"{1e3 * seconds[key] * calls[key]:6.1f}")

    top = ", ".join(f"{name.removeprefix('aten::')} {ms:.1f}" for name, ms in others.most_common(6))
    kernels = sum(ms for name, ms in others.items() if "scaled_dot_product" in name or "gelu" in name)
    print(f"   the rest of the step under the profiler: {sum(others.values()):.0f} ms of own CPU time, attention's "
          f"kernels and GELU (forward and backward) {kernels:.0f} ms of it; the largest (ms): {top}")

    # 4. The bound.
    left = target_ms - total_ms
    print(f"\n4. The matrix products alone take {total_ms:.0f} ms of the {target_ms:.0f} ms that 2x today allows a step; "
          + (f"everything else (embeddings, layer norms, GELU, softmax, the loss, AdamW, the data) would have to "
             f"fit in {left:.0f} ms, where the new step spends {1e3 * tokens / new - total_ms:.0f} ms on it and attention's "
             f"kernels and GELU alone take {kernels:.0f} ms"
             if left > 0 else "2x is out of reach in float32 on this CPU, whatever the rest of the step does"))


if __name__ == "__main__":
    sys.exit(main())

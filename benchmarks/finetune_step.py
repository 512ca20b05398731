"""What does one fine-tuning step of all-MiniLM-L6-v2 cost on this machine, and where does it go?

Times a training step (forward, backward, AdamW) on a batch of 16 reviews x 256 tokens, the
size of chapter 5's quick-mode batches, with BERT's attention dropout (0.1) and without it,
in float32 and (where the CPU has bf16 units) under bf16 autocast; and a forward pass in eval
mode for scale. Reports the best of several repeats. Chapter 5's quick mode turns attention
dropout off because of what this shows.

    python benchmarks/finetune_step.py [--repeats 3] [--batch 16] [--length 256]

The output of a run is stored next to this file (finetune_step.txt).
"""
from __future__ import annotations

import argparse
import os
import platform

import torch
from timing import best_seconds  # benchmarks/timing.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=256)
    args = parser.parse_args()

    from bertedu.checkpoint import default_checkpoint
    from bertedu.classification import BertForSequenceClassification
    from bertedu.finetuning import set_attention_dropout

    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    input_ids = torch.randint(1000, model.config.vocab_size, (args.batch, args.length))  # (B, T)
    labels = torch.randint(0, 2, (args.batch,))

    def training_step(bf16: bool) -> None:
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    def eval_forward() -> None:
        model.eval()
        with torch.no_grad():
            model(input_ids)

    print(f"all-MiniLM-L6-v2, batch {args.batch} x {args.length} tokens, best of {args.repeats} | "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} torch threads | torch {torch.__version__}")
    print(f"{'eval forward (no grad)':52s} {best_seconds(eval_forward, args.repeats, warm_up=True):6.2f} s")
    for bf16 in (False, True):
        for dropout in (0.1, 0.0):
            set_attention_dropout(model, dropout)
            name = f"training step, attention dropout {dropout}, {'bf16 autocast' if bf16 else 'float32'}"
            print(f"{name:52s} {best_seconds(lambda: training_step(bf16), args.repeats, warm_up=True):6.2f} s")


if __name__ == "__main__":
    main()

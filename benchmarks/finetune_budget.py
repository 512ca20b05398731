"""Chapter 5's quick-mode budget: one or two epochs, float32 or bf16 autocast on the CPU?

Fine-tunes the chapter's checkpoint (all-MiniLM-L6-v2) exactly as chapter 5's row 3 does
(``finetune_settings(quick=True)``: 2,000 train reviews, 256 tokens, head 64 + tail 190,
peak rate 1e-4, batch 16) with one or two epochs, in float32 or under bf16 autocast
(``FinetuneSettings.cpu_bf16``, which needs a CPU with native bf16), and prints validation
accuracy per epoch, test accuracy on the chapter's 1,000 reviews and the wall time of
fine-tuning plus testing. Quick mode (one epoch, bf16) is the default list's third row.
An optional third field reads fewer positions with the same head share
(``Truncation.fit``): ``1:float32:128`` is one float32 epoch at head 32 + tail 94 tokens, the
truncation chapter 5a's small BERTs use; its "seconds" then include no feature extraction.

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/finetune_budget.py [epochs:float32|bf16[:max_length] ...]

The output of a run is stored next to this file (finetune_budget.txt).
"""
from __future__ import annotations

import sys
from dataclasses import replace

import torch


def main(runs: list[str]) -> None:
    from bertedu.checkpoint import default_checkpoint
    from bertedu.classification import BertForSequenceClassification
    from bertedu.finetuning import encode_reviews, finetune_settings, run_finetuning, sentiment_splits
    from bertedu.settings import native_cpu_bf16, seed_everything
    from bertedu.tokenization import load_fast_tokenizer

    quick = finetune_settings(quick=True)
    checkpoint = default_checkpoint()
    tokenizer = load_fast_tokenizer(checkpoint)
    reviews = sentiment_splits(quick)
    splits = [encode_reviews(tokenizer, split.texts, split.labels, quick.truncation) for split in reviews]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16 on this CPU: {native_cpu_bf16()}; "
          f"{quick.n_train:,} train / {quick.n_validation} validation / {quick.n_test:,} test reviews, "
          f"{quick.truncation.describe()}")
    print(f"{'epochs':>6s} {'precision':>9s} {'tokens':>6s} {'validation per epoch':>22s} {'test':>6s} {'seconds':>7s}")
    for run in runs:
        epochs, precision, *length = run.split(":")
        truncation = quick.truncation.fit(int(length[0])) if length else quick.truncation
        settings = replace(quick, epochs=int(epochs), cpu_bf16=precision == "bf16", truncation=truncation)
        run_splits = splits if truncation == quick.truncation else [
            encode_reviews(tokenizer, split.texts, split.labels, truncation) for split in reviews]
        seed_everything(settings.seed)
        model = BertForSequenceClassification.from_pretrained(checkpoint, num_labels=2)
        result = run_finetuning(model, *run_splits, settings, pad_id=tokenizer.pad_token_id, progress=False)
        per_epoch = " ".join(f"{row['accuracy']:.1%}" for row in result.history.evals)
        print(f"{epochs:>6s} {precision:>9s} {truncation.max_length:6d} {per_epoch:>22s} {result.scores.accuracy:6.1%} "
              f"{result.seconds:7.0f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["2:float32", "2:bf16", "1:bf16", "1:float32"])

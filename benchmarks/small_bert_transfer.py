"""What chapter 5 will show: does chapter 4's pre-training pay off when fine-tuning?

On chapter 5's quick splits (2,000 train + 200 validation reviews from
`load_imdb("train", n=2200, seed=0)`, test `load_imdb("test", n=1000, seed=0)`), fine-tune
with chapter 5's small-BERT settings (`small_bert_settings`: 4 epochs, lr 3e-4, head + tail
truncation to 128 tokens, best epoch on validation):

- the shipped small BERT (`shipped_small_bert()`) against the same architecture with random weights;
- the learner's quick model (`pretrained_small_bert()`, chapter 4's quick run) against random weights;
- a learning curve: 200, 500, 1,000 and 2,000 labelled reviews, random against shipped.

Before fine-tuning it also measures why the old quick model transferred worse than random:
how much of chapter 5's data its pre-training corpus held, and how alike its review vectors are
(mean pairwise cosine similarity of the [CLS] and mean-pooled vectors of chapter 5's 200
validation reviews: near 1 means every review looks the same to the classifier).

    BERTEDU_IMDB_ARCHIVE=... OMP_NUM_THREADS=1 python benchmarks/small_bert_transfer.py [ROWS...]

ROWS (default all): random-arch, shipped, quick, random-quick, curve. Each result is appended to
small_bert_transfer.json as it finishes; small_bert_transfer.txt is the table.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "small_bert_transfer.json"
SIZES = (200, 500, 1_000, 2_000)


def splits():
    from bertedu.data import load_imdb, train_validation_split

    train, validation = train_validation_split(load_imdb("train", n=2200, seed=0), 200, seed=0)
    return train, validation, load_imdb("test", n=1000, seed=0)


def mean_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine similarity over all pairs of different rows of ``vectors`` (N, H)."""
    unit = torch.nn.functional.normalize(vectors.float(), dim=1)
    sims = unit @ unit.T
    n = len(unit)
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def review_vectors(encoder, tokenizer, texts) -> tuple[torch.Tensor, torch.Tensor]:
    """([CLS] vectors, mean-pooled vectors) of the first 128 tokens of each text: (N, H) each."""
    encoded = tokenizer(list(texts), truncation=True, max_length=128, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
    mask = encoded["attention_mask"][..., None].float()
    return hidden[:, 0], (hidden * mask).sum(1) / mask.sum(1)


def finetune_once(folder: Path | None, config, n_train: int, seed: int = 0) -> dict:
    from bertedu.classification import BertForSequenceClassification
    from bertedu.finetuning import encode_reviews, finetune, finetune_settings, predict_proba, small_bert_settings
    from bertedu.settings import seed_everything
    from bertedu.tokenization import imdb_wordpiece_vocab, load_fast_tokenizer

    train, validation, test = splits()
    train = train[:n_train]
    settings = small_bert_settings(finetune_settings(quick=True), config.max_position_embeddings)
    tokenizer = load_fast_tokenizer(folder or imdb_wordpiece_vocab(config.vocab_size))
    sets = [encode_reviews(tokenizer, s.texts, s.labels, settings.truncation) for s in (train, validation, test)]
    seed_everything(seed)
    model = (BertForSequenceClassification(config, num_labels=2) if folder is None
             else BertForSequenceClassification.from_pretrained(folder, num_labels=2))
    started = time.perf_counter()
    history = finetune(model, sets[0], sets[1], settings, pad_id=tokenizer.pad_token_id,
                       device=torch.device("cpu"), progress=False)
    probabilities = predict_proba(model, sets[2], settings.eval_batch_size, tokenizer.pad_token_id)
    return {"validation": history.best["accuracy"],
            "test": float((probabilities.argmax(1) == np.array(test.labels)).mean()),
            "seconds": time.perf_counter() - started, "n_train": n_train}


def record(key: str, value) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results[key] = value
    RESULTS.write_text(json.dumps(results, indent=1))
    print(key, value, flush=True)


def main(rows: list[str]) -> None:
    from bertedu.model import BertConfig, BertModel
    from bertedu.pretraining import SHIPPED_PRESET, pretrained_small_bert, pretraining_preset, shipped_small_bert
    from bertedu.tokenization import load_fast_tokenizer

    torch.set_num_threads(1)
    shipped = shipped_small_bert() if {"shipped", "curve", "collapse"} & set(rows) else None
    shipped_config = pretraining_preset(SHIPPED_PRESET).model_config(dropout=0.1)  # as saved
    assert shipped is None or BertConfig.from_pretrained(shipped) == shipped_config
    if "collapse" in rows:  # why did the old quick model transfer worse? (needs OLD_MODEL=folder)
        import os
        train, validation, _ = splits()
        folders = {"shipped": shipped, "old quick": os.environ.get("OLD_MODEL"), "quick": pretrained_small_bert()}
        for name, folder in folders.items():
            if folder is None:
                continue
            tokenizer = load_fast_tokenizer(folder)
            for weights in ("pre-trained", "random"):
                if weights == "random":
                    torch.manual_seed(0)
                    encoder = BertModel(BertConfig.from_pretrained(folder)).eval()
                else:
                    encoder = BertModel.from_pretrained(folder)
                cls, mean = review_vectors(encoder, tokenizer, validation.texts)
                record(f"collapse/{name}/{weights}", {"cls": mean_cosine(cls), "mean": mean_cosine(mean)})
    if "random-arch" in rows:
        record("shipped-arch/random/2000", finetune_once(None, shipped_config, 2000))
    if "shipped" in rows:
        record("shipped-arch/pretrained/2000", finetune_once(shipped, shipped_config, 2000))
    if "quick" in rows or "random-quick" in rows:
        quick = pretrained_small_bert()
        quick_config = BertConfig.from_pretrained(quick)
        if "random-quick" in rows:
            record("quick-arch/random/2000", finetune_once(None, quick_config, 2000))
        if "quick" in rows:
            record("quick-arch/pretrained/2000", finetune_once(quick, quick_config, 2000))
    if "curve" in rows:
        for n in SIZES[:-1]:
            record(f"shipped-arch/random/{n}", finetune_once(None, shipped_config, n))
            record(f"shipped-arch/pretrained/{n}", finetune_once(shipped, shipped_config, n))
    write_table()


def write_table() -> None:
    results = json.loads(RESULTS.read_text())
    lines = ["chapter 5's quick splits: 2,000 train / 200 validation (IMDb train, seed 0), 1,000 test reviews;",
             "small_bert_settings (4 epochs, lr 3e-4, head+tail 128 tokens), best epoch on validation; one seed",
             f"{'model':34s} {'labelled':>8s} {'validation':>10s} {'test':>6s} {'seconds':>8s}"]
    for key, row in results.items():
        if key.startswith("collapse/"):
            continue
        arch, weights, n = key.split("/")
        lines.append(f"{arch + ' ' + weights:34s} {int(n):8,d} {row['validation']:10.1%} {row['test']:6.1%} "
                     f"{row['seconds']:8.0f}")
    collapse = {k: v for k, v in results.items() if k.startswith("collapse/")}
    if collapse:
        lines.append("\nmean cosine similarity between chapter 5's 200 validation reviews ([CLS] / mean-pooled vectors)")
        for key, row in collapse.items():
            lines.append(f"{key.removeprefix('collapse/'):34s} [CLS] {row['cls']:.3f}   mean {row['mean']:.3f}")
    (HERE / "small_bert_transfer.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:] or ["collapse", "random-arch", "shipped", "quick", "random-quick", "curve"])

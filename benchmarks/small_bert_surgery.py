"""Where does chapter 4's quick model hold its deficit? Swap parts of it for random weights.

Chapter 5a's row 3 (chapter 4's quick pre-training, fine-tuned) ends below row 2 (random
weights). This script fine-tunes the quick model again with one part at a time replaced by
BERT's random initialisation (`init_bert_weights`, the same draw as row 2's where the shapes
allow), as Zhang et al. (2021, "Revisiting Few-sample BERT Fine-tuning") re-initialise the
pooler and top layers of BERT-base before fine-tuning:

- pooler: the pooler trained by next-sentence prediction;
- pooler + top layer: the same plus the last encoder layer (half of this 2-layer model);
- encoder layers: every encoder layer and the pooler, keeping the pre-trained embeddings;
- word embeddings: the word-piece embeddings, keeping the layers trained on them;
- centred word embeddings: the word-piece embeddings minus their mean vector.

Each with the quick model's schedule (`SMALL_BERT_SCHEDULES`: 4 epochs at a peak of 3e-4 when the
stored table was made, on the quick model of before the log-prior MLM bias), on
chapter 5's quick splits, seed 0. It also prints the mean pairwise cosine similarity of each
model's word-piece embeddings (`mean_pairwise_cosine`; the special tokens left out): a short MLM
run with a tied decoder tends to push all embeddings along one shared direction (Gao et al.,
2019, "Representation Degeneration Problem in Training Natural Language Generation Models").

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_surgery.py

The output of a run is stored next to this file (small_bert_surgery.txt).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch


def main() -> None:
    from bertedu.classification import BertForSequenceClassification
    from bertedu.finetuning import (encode_splits, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_classifier, small_bert_settings, word_embedding_cosine)
    from bertedu.model import BertConfig, init_bert_weights
    from bertedu.pretraining import pretrained_small_bert, shipped_small_bert
    from bertedu.settings import seed_everything
    from bertedu.tokenization import load_fast_tokenizer

    base = finetune_settings(quick=True)
    folder = pretrained_small_bert()
    folders = {"random": None, "pretrained": folder, "shipped": shipped_small_bert()}  # None: random weights
    tokenizer = load_fast_tokenizer(folder)
    config = BertConfig.from_pretrained(folder)
    settings = {w: small_bert_settings(base, config.max_position_embeddings, w) for w in ("random", "pretrained", "shipped")}
    truncation = settings["random"].truncation
    splits = encode_splits(tokenizer, sentiment_splits(base), truncation)
    n_special = len(tokenizer.all_special_ids)  # [PAD], [UNK], [CLS], [SEP], [MASK] come first

    def reinit(module: torch.nn.Module) -> None:
        module.apply(lambda m: init_bert_weights(m, config.initializer_range))

    def centre(model: BertForSequenceClassification) -> None:
        with torch.no_grad():
            weight = model.bert.embeddings.word_embeddings.weight  # (V, H)
            weight -= weight[n_special:].mean(0, keepdim=True)

    surgeries: list[tuple[str, str, Callable[[BertForSequenceClassification], None]]] = [
        ("random weights (row 2)", "random", lambda m: None),
        ("shipped model (row 4)", "shipped", lambda m: None),
        ("quick model (row 3)", "pretrained", lambda m: None),
        ("quick, pooler re-initialised", "pretrained", lambda m: reinit(m.bert.pooler)),
        ("quick, pooler + top layer", "pretrained", lambda m: (reinit(m.bert.pooler), reinit(m.bert.encoder.layer[-1]))),
        ("quick, encoder layers", "pretrained", lambda m: (reinit(m.bert.pooler), reinit(m.bert.encoder))),
        ("quick, word embeddings", "pretrained", lambda m: reinit(m.bert.embeddings.word_embeddings)),
        ("quick, centred word embeddings", "pretrained", centre),
    ]
    print(f"small BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}), {truncation.describe()}, seed 0; "
          f"schedules: " + "; ".join(f"{w} {s.epochs} epochs at {s.learning_rate:g}" for w, s in settings.items()))
    print(f"{'model':32s} {'word-emb cosine':>15s} {'validation':>10s} {'test':>6s} {'seconds':>7s}")
    for name, weights, surgery in surgeries:
        seed_everything(0)
        model = small_bert_classifier(config, folders[weights])
        surgery(model)
        cosine = word_embedding_cosine(model.bert, n_special)
        started = time.perf_counter()
        run = run_finetuning(model, *splits, settings[weights], pad_id=tokenizer.pad_token_id,
                             device=torch.device("cpu"), progress=False)
        print(f"{name:32s} {cosine:15.3f} {run.history.best['accuracy']:10.1%} {run.scores.accuracy:6.1%} "
              f"{time.perf_counter() - started:7.0f}", flush=True)


if __name__ == "__main__":
    main()

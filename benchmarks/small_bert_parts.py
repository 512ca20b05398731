"""With new attention, what else of chapter 4's quick run carries over to sentiment? Five seeds.

Chapter 5a's point 1c gives chapter 4's quick run new attention before fine-tuning
(`reinitialize_attention`) and gets back 13.2 of the 14.5 points it loses to random weights at
2,000 labels over ten seeds; about a point stays (`benchmarks/small_bert_seeds.txt`). This script asks where
that point sits, with three more changes to the quick run with new attention, each fine-tuned
with new attention's schedule (`SMALL_BERT_SCHEDULES`) on chapter 5's quick-mode splits, seeds 0-4:

- new feed-forward layers: every layer's feed-forward sublayer drawn again too, so only the
  embeddings stay pre-trained;
- shrink and perturb (Ash & Adams, 2020, "On Warm-Starting Neural Network Training"): every
  remaining weight matrix and embedding table moved halfway to a fresh draw of BERT's
  initialisation, ``W <- 0.5 W + 0.5 W_new``, their biases set to 0 as BERT starts them
  (LayerNorms kept);
- frozen word embeddings: the pre-trained word-piece vectors kept fixed while the rest learns;
  as a control, random weights with their random word-piece vectors frozen (random weights'
  schedule).

It prints test accuracy per seed and the paired mean difference from random weights and from the
quick run with new attention (both also run here, as in `small_bert_seeds.py`).

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_parts.py [n_seeds]

The output of a run is stored next to this file (small_bert_parts.txt).
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import replace

import torch

from small_berts import load_small_berts, summary_lines  # benchmarks/small_berts.py, beside this script


def new_feed_forward(model, initialize: Callable) -> None:
    for layer in model.bert.encoder.layer:
        layer.intermediate.apply(initialize)
        layer.output.apply(initialize)  # the feed-forward sublayer's W_2 and its LayerNorm


@torch.no_grad()
def shrink_and_perturb(model, initialize: Callable, keep: float = 0.5) -> None:
    for module in model.bert.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            old = module.weight.clone()
            initialize(module)  # a fresh draw; a Linear's bias becomes 0, as BERT starts it
            module.weight.mul_(1 - keep).add_(keep * old)


def freeze_word_embeddings(model, initialize: Callable) -> None:
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)


def main(n_seeds: int) -> None:
    from bertedu.finetuning import (encode_splits, finetune_settings, run_finetuning, sentiment_splits,
                                    small_bert_settings)
    from bertedu.model import init_bert_weights
    from bertedu.settings import seed_everything

    base = finetune_settings(quick=True)
    small_berts = load_small_berts()
    tokenizer, config = small_berts.tokenizer, small_berts.config
    initialize = functools.partial(init_bert_weights, initializer_range=config.initializer_range)
    arms: dict[str, tuple[str, Callable | None]] = {
        "random": ("random", None),
        "new attention": ("new-attention", None),
        "+ new feed-forward": ("new-attention", new_feed_forward),
        "+ shrink and perturb": ("new-attention", shrink_and_perturb),
        "+ frozen word vectors": ("new-attention", freeze_word_embeddings),
        "random, frozen words": ("random", freeze_word_embeddings),  # the control for the row above
    }
    settings = {w: small_bert_settings(base, config.max_position_embeddings, w) for w in ("random", "new-attention")}
    train_set, validation_set, test_set = encode_splits(tokenizer, sentiment_splits(base),
                                                        settings["random"].truncation)
    print(f"small BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}), chapter 4's quick run; "
          + "; ".join(f"{w}: {s.epochs} epochs, lr {s.learning_rate:g}" for w, s in settings.items()))
    print(f"{'seed':>4s} " + " ".join(f"{name:>22s} {'test':>6s}" for name in arms))
    tests: dict[str, list[float]] = {name: [] for name in arms}
    for seed in range(n_seeds):
        row = []
        for name, (weights, change) in arms.items():
            seed_everything(seed)
            model = small_berts.classifier(weights)
            if change is not None:
                torch.manual_seed(1_000 + seed)  # the change's own draws; the head is drawn already
                change(model, initialize)
            result = run_finetuning(model, train_set, validation_set, test_set, replace(settings[weights], seed=seed),
                                    pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), progress=False)
            tests[name].append(result.scores.accuracy)
            row.append(f"{result.history.best['accuracy']:22.1%} {result.scores.accuracy:6.1%}")
        print(f"{seed:4d} " + " ".join(row), flush=True)
    pairs = [(name, "random") for name in arms if name != "random"]
    pairs += [(name, "new attention") for name, (weights, change) in arms.items()
              if weights == "new-attention" and change is not None]
    print("\n".join(summary_lines(tests, pairs)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)

"""Does the small BERT's classifier read the review better from the mean of its vectors than from [CLS]?

Chapter 5a's small-BERT classifier reads the pooled ``[CLS]`` vector, ``tanh(W h_[CLS] + b)``, as BERT's paper
does. Chapter 5a (point 1b) finds that chapter 4's quick model's ``[CLS]`` attends to a few fixed
positions in its last layer. If that is what costs it most of its 14.5 points, reading the review
from the mean of the last layer's vectors over the real tokens, ``tanh(W mean_t h_t + b)`` (the same
pooler weights; Sentence-BERT's pooling, with which all-MiniLM-L6-v2 was trained), should give most
of them back without re-initialising anything. This script fine-tunes each kind of weights with both
poolings, seeds 0 to n-1, on chapter 5's quick splits (2,000 train, 200 validation, 1,000 test
reviews), every kind with its own schedule from ``SMALL_BERT_SCHEDULES`` (chosen on validation with
``[CLS]`` pooling; ``--sweep`` chooses one for mean pooling), and prints validation and test accuracy per seed
and the paired differences. Mean pooling is defined here, not in the package: it does not change
what chapter 5a concludes (see the stored output).

    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_pooling.py [n_seeds] [--arms random:cls,random:mean,...]
    BERTEDU_IMDB_ARCHIVE=... python benchmarks/small_bert_pooling.py --sweep [--arms random:mean,...]

An arm is ``kind:pooling``, kind one of random, pretrained, new-attention, rescaled, shipped and
pooling cls or mean, or ``kind:pooling:epochs:rate`` for another schedule than the kind's.
``--sweep`` runs each arm with seed 0 over the grid of ``small_bert_sweep.py`` (2 or 4 epochs x
its rates) and prints the schedule that is best on validation, as that script does for ``[CLS]``.
The output of a run is stored next to this file (small_bert_pooling.txt).
"""
from __future__ import annotations

import sys
import types
from dataclasses import replace

import torch

from small_berts import KINDS, load_small_berts, summary_lines  # benchmarks/small_berts.py, beside this script

POOLINGS = ("cls", "mean")
DEFAULT_ARMS = ("random:cls", "random:mean", "pretrained:mean", "new-attention:cls", "new-attention:mean",
                "rescaled:mean")


def mean_pooled_forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                        output_attentions=False):
    """``BertForSequenceClassification.forward`` with the pooler applied to the masked mean of the
    last layer ``(B, T, H) -> (B, H)`` instead of to ``h_[CLS]``; padding does not count."""
    import torch.nn.functional as F

    from bertedu.classification import SequenceClassifierOutput

    out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                    output_attentions=output_attentions)
    hidden = out.last_hidden_state  # (B, T, H)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1): 1 on real tokens, [CLS] and [SEP] included
    mean = (hidden * weights).sum(1) / weights.sum(1)  # (B, H)
    logits = self.classifier(self.dropout(torch.tanh(self.bert.pooler.dense(mean))))  # (B, C)
    loss = None if labels is None else F.cross_entropy(logits.float(), labels)
    return SequenceClassifierOutput(loss, logits, out.attentions)


def parse_arm(arm: str) -> tuple[str, str, tuple[int, float] | None]:
    """``"kind:pooling"`` or ``"kind:pooling:epochs:rate"`` -> (kind, pooling, schedule or None)."""
    parts = arm.split(":")
    try:
        if len(parts) not in (2, 4) or parts[0] not in KINDS or parts[1] not in POOLINGS:
            raise ValueError
        return parts[0], parts[1], (int(parts[2]), float(parts[3])) if len(parts) == 4 else None
    except ValueError:
        raise SystemExit(f"{arm!r}: an arm is kind:pooling[:epochs:rate], kind one of {', '.join(KINDS)}, "
                         f"pooling cls or mean") from None


def new_classifier(small_berts, arm: str):
    """A new classifier on the arm's kind of weights, reading its pooling; seed first."""
    kind, pooling, _ = parse_arm(arm)
    model = small_berts.classifier(kind)
    if pooling == "mean":
        model.forward = types.MethodType(mean_pooled_forward, model)
    return model


def main(n_seeds: int, chosen: tuple[str, ...], sweep: bool = False) -> None:
    from bertedu.finetuning import encode_splits, finetune_settings, run_finetuning, sentiment_splits, small_bert_settings
    from bertedu.settings import seed_everything

    base = finetune_settings(quick=True)
    small_berts = load_small_berts()
    tokenizer, config = small_berts.tokenizer, small_berts.config
    schedules = {}
    for arm in chosen:
        kind, _, schedule = parse_arm(arm)
        settings = small_bert_settings(base, config.max_position_embeddings, kind)
        schedules[arm] = settings if schedule is None else replace(settings, epochs=schedule[0],
                                                                   learning_rate=schedule[1])
    truncation = small_bert_settings(base, config.max_position_embeddings).truncation
    train_set, validation_set, test_set = encode_splits(tokenizer, sentiment_splits(base), truncation)
    print(f"small BERT ({config.num_hidden_layers} layers, hidden {config.hidden_size}), {truncation.describe()}; "
          + "; ".join(f"{arm}: {s.epochs} epochs, lr {s.learning_rate:g}" for arm, s in schedules.items())
          + "; 'pretrained' is chapter 4's quick run; torch " + torch.__version__)
    if sweep:
        from small_bert_sweep import RATES  # benchmarks/small_bert_sweep.py: the same grid

        print(f"{'arm':18s} {'epochs':>6s} {'lr':>7s} {'validation':>10s} {'test':>6s}")
        for arm in chosen:
            best = (-1.0, 0, 0.0)
            for epochs in (2, 4):
                for rate in RATES:
                    seed_everything(0)
                    model = new_classifier(small_berts, arm)
                    run = replace(schedules[arm], epochs=epochs, learning_rate=rate, seed=0)
                    result = run_finetuning(model, train_set, validation_set, test_set, run, pad_id=tokenizer.pad_token_id,
                                            device=torch.device("cpu"), progress=False)
                    validation_accuracy = result.history.best["accuracy"]
                    print(f"{arm:18s} {epochs:6d} {rate:7.0e} {validation_accuracy:10.1%} {result.scores.accuracy:6.1%}",
                          flush=True)
                    if validation_accuracy > best[0]:  # ties go to the first: fewer epochs, then the smaller rate
                        best = (validation_accuracy, epochs, rate)
            print(f"best on validation, {arm}: {best[1]} epochs, lr {best[2]:g} ({best[0]:.1%})", flush=True)
        return
    print(f"{'seed':>4s} " + " ".join(f"{arm + ' val':>23s} {'test':>6s}" for arm in chosen))
    tests: dict[str, list[float]] = {arm: [] for arm in chosen}
    for seed in range(n_seeds):
        row = []
        for arm in chosen:
            seed_everything(seed)
            model = new_classifier(small_berts, arm)
            result = run_finetuning(model, train_set, validation_set, test_set, replace(schedules[arm], seed=seed),
                                    pad_id=tokenizer.pad_token_id, device=torch.device("cpu"), progress=False)
            tests[arm].append(result.scores.accuracy)
            row.append(f"{result.history.best['accuracy']:23.1%} {result.scores.accuracy:6.1%}")
        print(f"{seed:4d} " + " ".join(row), flush=True)
    pairs = []
    randoms = {parse_arm(arm)[1]: arm for arm in chosen if parse_arm(arm)[0] == "random"}
    for arm in chosen:  # each arm against random weights with the same pooling, then mean against cls
        kind, pooling, _ = parse_arm(arm)
        if kind != "random" and pooling in randoms:
            pairs.append((arm, randoms[pooling]))
    pairs += [(arm, arm.replace(":mean", ":cls")) for arm in chosen
              if arm.endswith(":mean") and arm.replace(":mean", ":cls") in tests]
    print("\n".join(summary_lines(tests, pairs)))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    sweep = "--sweep" in arguments
    if sweep:
        arguments.remove("--sweep")
    chosen = DEFAULT_ARMS
    if "--arms" in arguments:
        at = arguments.index("--arms")
        chosen = tuple(arguments[at + 1].split(",")) if at + 1 < len(arguments) else ()
        del arguments[at:at + 2]
    if not chosen:
        raise SystemExit("--arms takes a comma-separated list of kind:pooling[:epochs:rate]")
    for arm in chosen:
        parse_arm(arm)
    main(int(arguments[0]) if arguments else 5, chosen, sweep)

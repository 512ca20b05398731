"""Ship the small BERT: copy a finished `bertedu pretrain --preset small-bert` run into the package.

    OMP_NUM_THREADS=1 nohup bertedu pretrain --preset small-bert --run-dir RUN --output RUN/model --no-progress &
    python benchmarks/ship_small_bert.py RUN "<the command above>" "<hardware in words>"

Copies config.json, model.safetensors and vocab.txt from RUN/model into
bertedu/resources/small-bert/, measures the model (held-out MLM and NSP accuracy, the
top-5 probe on test reviews, fill-mask), and writes MODEL_CARD.md and SHA256SUMS beside it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch


def main(run_dir: str, command: str, hardware: str) -> None:
    from bertedu.checkpoint import CONFIG_NAME, SAFETENSORS_NAME, VOCAB_NAME
    from bertedu.files import write_text
    from bertedu.pretraining import (SHIPPED_DIR, SHIPPED_PRESET, BertForPreTraining, fill_mask, masked_word_probe,
                                     pretraining_preset, probe_accuracy, write_checksums)
    from bertedu.settings import native_cpu_bf16
    from bertedu.tokenization import load_fast_tokenizer

    run = Path(run_dir)
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    history = state["history"]
    settings = pretraining_preset(SHIPPED_PRESET)
    finished = (run / "model" / SAFETENSORS_NAME).is_file()
    if finished:
        for name in (CONFIG_NAME, SAFETENSORS_NAME, VOCAB_NAME):
            shutil.copyfile(run / "model" / name, SHIPPED_DIR / name)
    else:  # an unfinished run: ship its last checkpoint, and say so in the card
        from bertedu.tokenization import imdb_wordpiece_vocab

        model = BertForPreTraining(settings.model_config())
        model.load_state_dict(state["model"])
        model.config = settings.model_config(dropout=0.1)
        model.save_pretrained(SHIPPED_DIR, vocab_file=imdb_wordpiece_vocab(settings.vocab_size))
    write_text(SHIPPED_DIR / "history.json",  # the evaluations only, for chapter 4's compute plot
               json.dumps({"batch_size": settings.training.batch_size, "evals": history["evals"]}, indent=1))
    model = BertForPreTraining.from_pretrained(SHIPPED_DIR)
    tokenizer = load_fast_tokenizer(SHIPPED_DIR)
    probe = probe_accuracy(model, masked_word_probe(tokenizer))
    if history["evals"][-1]["step"] != state["step"]:  # measure the shipped weights on the held-out pairs
        from bertedu.pretraining import build_pretraining_dataset, evaluate_pretraining, pretraining_corpus

        _, held_out = pretraining_corpus(0, settings.n_validation, settings.seed)
        validation = build_pretraining_dataset(held_out.texts, tokenizer, max_seq_length=128, seed=settings.seed + 1)
        history["evals"].append({"step": state["step"], **evaluate_pretraining(model, validation)})
        write_text(SHIPPED_DIR / "history.json",
                   json.dumps({"batch_size": settings.training.batch_size, "evals": history["evals"]}, indent=1))
    guesses = fill_mask(model, tokenizer, "this movie was [MASK] .", top_k=5)[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    last = history["evals"][-1]
    size = (SHIPPED_DIR / SAFETENSORS_NAME).stat().st_size
    steps_per_second = state["step"] / max(state.get("train_seconds", 1.0), 1e-9)
    bf16_note = (", with bf16 autocast on the CPU (`TrainingConfig.cpu_bf16`; this CPU has native bf16)"
                 if settings.training.cpu_bf16 and native_cpu_bf16() else "")
    card = f"""# small-bert: the course's pre-trained small BERT

A BERT encoder with its pre-training heads (MLM + NSP), pre-trained by the course's own code
(`bertedu.pretraining`) on IMDb **train** reviews outside chapter 5's 2,200
(`pretraining_corpus`: {25_000 - 2_200 - settings.n_validation:,} reviews for training,
{settings.n_validation} held out). It never saw chapter 5's validation reviews nor any IMDb test review.
Load it with `BertForPreTraining.from_pretrained(bertedu.pretraining.shipped_small_bert())`.

| | |
|---|---|
| architecture | {settings.num_hidden_layers} layers, hidden {settings.hidden_size}, {settings.num_attention_heads} heads, feed-forward {settings.intermediate_size}, {"pre-LN" if settings.pre_layer_norm else "post-LN"}, 128 positions |
| vocabulary | the course's IMDb WordPiece, {settings.vocab_size:,} tokens (`imdb_wordpiece_vocab`) |
| parameters | {sum(p.numel() for p in model.parameters()):,} (weights file {size / 1e6:.1f} MB, float32) |
| recipe | MLM (15%, 80/10/10, predicted only at the masked positions) + NSP; {"the MLM bias started at the log token frequencies of the training pairs (`init_mlm_bias`); " if settings.mlm_bias_prior else ""}no dropout; AdamW, peak learning rate {settings.training.learning_rate:g}, warm-up {settings.training.warmup_ratio:.0%} then linear decay over a wall-clock budget of {settings.training.max_minutes:g} minutes (`TrainingConfig.max_minutes`); batch {settings.training.batch_size} x 128 tokens |
| command | `{command}` |
| commit | {commit} (code of the run; the weights were added in a later commit) |
| hardware | {hardware} |
| training time | {state.get('train_seconds', float('nan')) / 60:.1f} minutes in training steps |
| steps | {state['step']:,} optimizer steps, {state['step'] * settings.training.batch_size:,} sequences{"" if finished else f" (**an unfinished run**: its checkpoint at {state['train_seconds'] / 60:.0f} of the {settings.training.max_minutes:g} budgeted minutes, learning rate not yet decayed; resume it with the same command, then run this script again)"} |
| held-out MLM accuracy | {last['mlm_accuracy']:.1%} (loss {last['mlm_loss']:.3f}) on pairs from the {settings.n_validation} held-out train reviews |
| held-out NSP accuracy | {last['nsp_accuracy']:.1%} |
| test-review probe | the original word in the top 5 for {probe['top5']:.1%} of {probe['n']} masked words from IMDb test reviews (top 1: {probe['top1']:.1%}) |
| fill-mask | "this movie was [MASK] ." -> {", ".join(f"{t} ({p:.2f})" for t, p in guesses)} |

Speed: {steps_per_second:.1f} optimizer steps per second of training
({steps_per_second * settings.training.batch_size * 128:,.0f} token positions/s, padding included){bf16_note}.
Regenerate: run the command above, then
`python benchmarks/ship_small_bert.py RUN_DIR "<command>" "<hardware>"`.
"""
    write_text(SHIPPED_DIR / "MODEL_CARD.md", card)
    write_checksums(SHIPPED_DIR)
    print(card)
    print({"probe": probe})


if __name__ == "__main__":
    main(*sys.argv[1:4])

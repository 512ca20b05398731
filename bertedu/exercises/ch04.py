"""Chapter 4 exercises: the MLM loss, the learning-rate schedule, whole-word grouping, a pre-LN layer.

    from bertedu.exercises import ch04
    ch04.check_mlm_loss(my_mlm_loss)            # (logits (B, T, V), labels (B, T)) -> scalar
    ch04.check_lr_schedule(my_lr)               # (step, warmup_steps, total_steps, peak_lr) -> float
    ch04.check_word_starts(my_word_starts)      # continuation (B, T) bool -> (B, T) long
    ch04.check_pre_ln_layer(my_pre_ln_layer)    # (BertLayer, x (B, T, H)) -> (B, T, H)
    ch04.solution("mlm_loss")
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from bertedu.exercises import (
    ExerciseError,
    call_learner,
    checker,
    compare_tensors,
    fail,
    print_solution,
)

# -- reference solutions ------------------------------------------------------------------


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not -100.

    logits: ``(B, T, V)``; labels: ``(B, T)`` original ids at selected positions, -100 elsewhere.
    """
    selected = labels != -100  # (B, T)
    return F.cross_entropy(logits[selected], labels[selected])  # (N, V) against (N,)


def lr_schedule(step: int, warmup_steps: int, total_steps: int, peak_lr: float) -> float:
    """The learning rate of update ``step`` (0-based): linear warm-up, then linear decay."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def word_starts(continuation: torch.Tensor) -> torch.Tensor:
    """For each token, the position of the first piece of its word.

    continuation: ``(B, T)`` bool, True where a token continues the previous word (``##``).
    Returns ``(B, T)`` long. Example: ``[F, T, T, F, T] -> [0, 0, 0, 3, 3]``.
    """
    positions = torch.arange(continuation.shape[-1]).expand_as(continuation)
    return torch.where(continuation, 0, positions).cummax(dim=-1).values


def pre_ln_layer(layer, x: torch.Tensor) -> torch.Tensor:
    """The weights of a (post-LN) ``BertLayer``, arranged pre-LN: LayerNorm before each sublayer.

    ``h = x + W_O attention(LN_1(x))``, then ``h + W_2 gelu(W_1 LN_2(h))``, where ``LN_1`` is
    ``layer.attention.output.LayerNorm`` and ``LN_2`` is ``layer.output.LayerNorm``; no
    LayerNorm after either sum. x: ``(B, T, H)`` -> ``(B, T, H)`` (no padding, eval mode).
    """
    attention = layer.attention
    context, _ = attention.self(attention.output.LayerNorm(x), None)  # (B, T, H)
    h = x + attention.output.dense(context)
    return h + layer.output.dense(layer.intermediate(layer.output.LayerNorm(h)))


SOLUTIONS = {"mlm_loss": mlm_loss, "lr_schedule": lr_schedule, "word_starts": word_starts,
             "pre_ln_layer": pre_ln_layer}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------


@checker("mlm_loss", n_cases=1)
def check_mlm_loss(function: Callable) -> None:
    """Compare ``function(logits, labels)`` with the cross-entropy over labelled positions."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 11, generator=g)
    labels = torch.full((2, 6), -100)
    labels[0, 1], labels[0, 4], labels[1, 2] = 3, 7, 10
    description = "logits (2, 6, 11) with 3 labelled positions"
    got = call_learner(function, description, logits.clone(), labels.clone())
    expected = mlm_loss(logits, labels)
    if isinstance(got, torch.Tensor) and got.shape == () and not torch.allclose(got, expected, atol=1e-5):
        safe = labels.clamp(min=0)
        everywhere = F.cross_entropy(logits.view(-1, 11), safe.view(-1))
        if torch.allclose(got, everywhere, atol=1e-5):
            fail("Your loss averages over every position. Only tokens with a label (not -100) count: "
                 "select them with labels != -100 first.")
        summed = F.cross_entropy(logits[labels != -100], labels[labels != -100], reduction="sum")
        if torch.allclose(got, summed, atol=1e-5):
            fail("Your loss is the sum over the labelled tokens; take the mean (divide by their number).")
    compare_tensors(got, expected, f"mlm_loss on {description}")


@checker("lr_schedule", n_cases=22)
def check_lr_schedule(function: Callable) -> None:
    """Compare ``function(step, warmup_steps, total_steps, peak_lr)`` at many steps."""
    cases = [(step, 4, 20, 1e-3) for step in range(20)] + [(0, 0, 10, 0.5), (9, 0, 10, 0.5)]
    for step, warmup, total, peak in cases:
        got = call_learner(function, f"step={step}, warmup_steps={warmup}, total_steps={total}, peak_lr={peak}",
                           step, warmup, total, peak)
        expected = lr_schedule(step, warmup, total, peak)
        if not isinstance(got, (int, float)) or abs(got - expected) > 1e-12 + 1e-9 * peak:
            phase = "warm-up" if step < warmup else "decay"
            hint = (" During warm-up the rate rises linearly and reaches peak_lr at the last warm-up "
                    "step (step + 1 out of warmup_steps)." if phase == "warm-up" else
                    " After warm-up it falls linearly from peak_lr towards 0 at total_steps.")
            fail(f"lr at step {step} (warmup_steps={warmup}, total_steps={total}, peak_lr={peak}, "
                 f"{phase}): yours {got!r}, expected {expected:.6g}.{hint}")


@checker("word_starts", n_cases=1)
def check_word_starts(function: Callable) -> None:
    """Compare ``function(continuation)`` with the start position of each token's word."""
    continuation = torch.tensor([[False, True, True, False, True, False],
                                 [False, False, True, False, False, True]])
    got = call_learner(function, "continuation of shape (2, 6)", continuation.clone())
    expected = word_starts(continuation)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.equal(got.long(), expected):
        row = int((got.long() != expected).any(-1).nonzero()[0])
        raise ExerciseError(
            f"Row {row}, continuation {continuation[row].int().tolist()}: yours {got[row].tolist()}, "
            f"expected {expected[row].tolist()}. A word starts at each False; every True belongs to "
            "the word of the nearest False before it (a running maximum of start positions)."
        )
    compare_tensors(got, expected, "word_starts(continuation of shape (2, 6))", atol=0)


@checker("pre_ln_layer", n_cases=1)
def check_pre_ln_layer(function: Callable) -> None:
    """Compare ``function(layer, x)`` with the package's pre-LN ``BertLayer`` holding the same weights."""
    from bertedu.model import BertConfig, BertLayer

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    layer = BertLayer(config).eval()
    pre = BertLayer(BertConfig(**{**config.__dict__, "pre_layer_norm": True})).eval()
    pre.load_state_dict(layer.state_dict())
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        got = call_learner(function, "a BertLayer (H=16) and x of shape (2, 5, 16)", layer, x.clone())
        expected = pre(x, None)[0]
        if isinstance(got, torch.Tensor) and got.shape == expected.shape and not torch.allclose(got, expected, atol=1e-5):
            if torch.allclose(got, layer(x, None)[0], atol=1e-5):
                fail("That is the post-LN layer (BERT's): LayerNorm after each residual sum. Pre-LN "
                     "normalises the sublayer's input instead and leaves the sum as it is.")
            if got.mean(-1).abs().max() < 1e-4:
                fail("Every position of your output has mean 0: a LayerNorm is applied after a sum. In "
                     "pre-LN the residual stream itself is never normalised inside the layer.")
        compare_tensors(got, expected, "pre_ln_layer(layer, x of shape (2, 5, 16))", atol=1e-5)

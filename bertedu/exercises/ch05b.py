"""Chapter 5b exercises: count what a LoRA configuration trains; put LoRA on the feed-forward block.

    from bertedu.exercises import ch05b
    ch05b.check_lora_parameter_count(my_count)   # (config: BertConfig, rank, target_modules) -> int
    ch05b.check_lora_on_feed_forward(my_apply)   # (encoder: BertModel, rank) -> None, in place
    ch05b.solution("lora_parameter_count")
"""
from __future__ import annotations

from typing import Callable

import torch

from bertedu.exercises import call_learner, checker, fail, print_solution
from bertedu.lora import LoRALinear, apply_lora, lora_layers
from bertedu.model import BertConfig, BertModel

# -- reference solutions ------------------------------------------------------------------


def lora_parameter_count(config: BertConfig, rank: int, target_modules: tuple[str, ...]) -> int:
    """LoRA's trainable parameters: ``r (d_in + d_out)`` for every targeted linear layer.

    A target matches a layer whose name *ends* with it, so ``"output.dense"`` is both the
    attention's W^O (H -> H) and the feed-forward W_2 (I -> H).
    """
    H, I = config.hidden_size, config.intermediate_size
    shapes = {  # name ending -> (d_in, d_out) of every layer it matches, in one encoder layer
        "query": [(H, H)], "key": [(H, H)], "value": [(H, H)],
        "attention.output.dense": [(H, H)],
        "intermediate.dense": [(H, I)],
        "output.dense": [(H, H), (I, H)],
    }
    per_layer = sum(rank * (d_in + d_out) for target in target_modules for d_in, d_out in shapes[target])
    return config.num_hidden_layers * per_layer


def lora_on_feed_forward(encoder: BertModel, rank: int) -> None:
    """Wrap W_1 (``intermediate.dense``) and W_2 (the layer's ``output.dense``) of every layer.

    ``attention.output.dense`` (W^O) also ends in ``output.dense``: leave it alone.
    """
    for layer in encoder.encoder.layer:
        layer.intermediate.dense = LoRALinear(layer.intermediate.dense, rank)
        layer.output.dense = LoRALinear(layer.output.dense, rank)


SOLUTIONS = {"lora_parameter_count": lora_parameter_count, "lora_on_feed_forward": lora_on_feed_forward}


def solution(name: str) -> None:
    """Print the reference solution of exercise ``name``."""
    print_solution(SOLUTIONS, name)


# -- checkers -----------------------------------------------------------------------------

MINILM = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536)
BASE = BertConfig()  # BERT-base: 12 layers, H = 768, I = 3072
COUNT_CASES = [
    (MINILM, 8, ("query", "value")),
    (MINILM, 4, ("query", "key", "value")),
    (MINILM, 16, ("intermediate.dense",)),
    (BASE, 8, ("query", "value")),
    (MINILM, 2, ("output.dense",)),
]


def counted_by_the_package(config: BertConfig, rank: int, target_modules: tuple[str, ...]) -> int:
    """What ``bertedu.lora.apply_lora`` adds to a model of this shape (on the meta device: no memory)."""
    with torch.device("meta"):
        layers = apply_lora(BertModel(config), rank, target_modules=target_modules)
    return sum(layer.lora_A.numel() + layer.lora_B.numel() for layer in layers.values())


@checker("lora_parameter_count", n_cases=len(COUNT_CASES))
def check_lora_parameter_count(function: Callable) -> None:
    """Compare ``function(config, rank, target_modules)`` with what ``apply_lora`` really adds."""
    for config, rank, targets in COUNT_CASES:
        what = (f"L={config.num_hidden_layers}, H={config.hidden_size}, I={config.intermediate_size}, "
                f"rank={rank}, target_modules={targets}")
        got = call_learner(function, what, config, rank, targets)
        expected = counted_by_the_package(config, rank, targets)
        if got == expected:
            continue
        H, I, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
        hint = ""
        if got == expected // L:
            hint = f"that is one layer's count: the model has {L} layers."
        elif targets == ("output.dense",) and got == L * rank * (I + H):
            hint = "'output.dense' also matches attention.output.dense (W^O, H -> H): a target matches name endings."
        elif got == L * len(targets) * rank * 2 * H and "intermediate.dense" in targets:
            hint = f"W_1 maps H = {H} to I = {I}: its LoRA factors are r x {H} and {I} x r."
        elif got == L * sum(1 for _ in targets) * H * H:
            hint = "that counts the full weight matrices; LoRA trains r (d_in + d_out) per layer."
        fail(f"On {what}: got {got}, expected {expected}. {hint}".rstrip())


@checker("lora_on_feed_forward", n_cases=4)
def check_lora_on_feed_forward(function: Callable) -> None:
    """Run ``function(encoder, rank)`` on a small BERT and inspect what it wrapped."""
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=24, max_position_embeddings=16)
    torch.manual_seed(0)
    encoder = BertModel(config).eval()
    input_ids = torch.randint(5, 40, (2, 7))
    with torch.no_grad():
        before = encoder(input_ids).last_hidden_state
    try:
        function(encoder, 3)
    except NotImplementedError:
        raise
    except Exception as error:
        fail(f"Your function raised {type(error).__name__}: {error}\n  on a 2-layer BERT with rank 3.")
    wrapped = sorted(name for name, m in encoder.named_modules() if isinstance(m, LoRALinear))
    expected = sorted(f"encoder.layer.{i}.{part}" for i in range(2) for part in ("intermediate.dense", "output.dense"))
    # 1. the right layers
    if any(name.endswith("attention.output.dense") for name in wrapped):
        fail("You wrapped attention.output.dense (W^O): it ends in 'output.dense' too, but it belongs to attention.")
    if wrapped != expected:
        fail(f"Wrapped {wrapped or 'nothing'}; expected W_1 and W_2 of every layer: {expected}.")
    # 2. the right rank and a frozen base
    for layer in lora_layers(encoder):
        if layer.rank != 3:
            fail(f"A layer has rank {layer.rank}; use the rank you were given (3).")
        if layer.base_layer.weight.requires_grad:
            fail("A wrapped layer's base weight still trains: LoRALinear freezes it; did you wrap a copy?")
    # 3. B = 0: the model is unchanged at the start
    output = call_learner(lambda ids: encoder(ids).last_hidden_state, "the wrapped model", input_ids)
    if (output - before).abs().max() > 1e-6:
        fail("The wrapped model's output changed before any training: B must start at zero.")
    # 4. the count
    trainable = sum(p.numel() for name, p in encoder.named_parameters() if ".lora_" in name)
    if trainable != lora_parameter_count(config, 3, ("intermediate.dense",)) * 2:
        fail(f"{trainable} LoRA parameters; expected 2 layers x 2 x r (H + I) = "
             f"{lora_parameter_count(config, 3, ('intermediate.dense',)) * 2}.")


__all__ = ["check_lora_on_feed_forward", "check_lora_parameter_count", "solution"]

"""Chapter 5b exercises: count what a LoRA configuration trains; put LoRA on the feed-forward
block; a fourth method, (IA)^3, that learns one scale per output feature.

    from bertedu.exercises import ch05b
    ch05b.check_lora_parameter_count(my_count)   # (config: BertConfig, rank, target_modules) -> int
    ch05b.check_lora_on_feed_forward(my_apply)   # (encoder: BertModel, rank) -> None, in place
    ch05b.check_ia3_wrap(my_wrap)                # (layer: nn.Linear) -> nn.Module
    ch05b.solution("lora_parameter_count")
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

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


class IA3Linear(nn.Module):
    """(IA)^3 (Liu et al., 2022) on one linear layer: ``y = l * (W x + b)``, ``l`` of shape ``(d_out,)``.

    The base layer is frozen; ``l`` starts at ones, so the wrapped layer starts unchanged.
    (peft calls the same vector ``ia3_l`` and, for key and value, scales the output too.)
    """

    def __init__(self, base_layer: nn.Linear) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.base_layer.requires_grad_(False)
        self.ia3_l = nn.Parameter(torch.ones(base_layer.out_features))  # (d_out,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base_layer(x) * self.ia3_l  # (..., d_out) * (d_out,)


def ia3_wrap(layer: nn.Linear) -> nn.Module:
    """Wrap ``layer`` in (IA)^3: a frozen layer whose output is scaled by a learned vector."""
    return IA3Linear(layer)


SOLUTIONS = {"lora_parameter_count": lora_parameter_count, "lora_on_feed_forward": lora_on_feed_forward,
             "ia3_wrap": ia3_wrap}


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


@checker("ia3_wrap", n_cases=4)
def check_ia3_wrap(function: Callable) -> None:
    """Wrap a 6 -> 4 linear layer with ``function`` and test the four properties of (IA)^3."""
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)  # d_in != d_out, so scaling the wrong side shows in the count
    x = torch.randn(3, 6)
    with torch.no_grad():
        before = layer(x)
    wrapped = call_learner(function, "an nn.Linear(6, 4)", layer)
    if not isinstance(wrapped, nn.Module):
        fail(f"Return the wrapped layer (an nn.Module); got {type(wrapped).__name__}.")
    # 1. only d_out numbers train
    trainable = [p for p in wrapped.parameters() if p.requires_grad]
    count = sum(p.numel() for p in trainable)
    if layer.weight.requires_grad or layer.bias.requires_grad:
        fail(f"{count} trainable parameters: the base layer still trains. Freeze it "
             "(layer.requires_grad_(False)); only the scale vector learns.")
    if count == layer.in_features:
        fail(f"{count} trainable parameters, one per *input* feature: scale the layer's output "
             f"(d_out = {layer.out_features} numbers), l * (W x + b).")
    if count != layer.out_features:
        fail(f"{count} trainable parameters; (IA)^3 trains one number per output feature: {layer.out_features}.")
    # 2. unchanged at the start
    got = call_learner(wrapped, "the wrapped layer", x)
    if got.abs().max() < 1e-12 and before.abs().max() > 0:
        fail("The wrapped layer outputs zeros: start the scale at ones (LoRA's B starts at zero because it is "
             "added; a scale multiplies).")
    if (got - before).abs().max() > 1e-6:
        fail("The wrapped layer's output differs from the layer's before any training: start the scale at ones.")
    # 3. a scale of 2 doubles the whole output, bias included
    with torch.no_grad():
        trainable[0].fill_(2.0)
        doubled = wrapped(x)
    if (doubled - 2 * before).abs().max() > 1e-5:
        if (doubled - (2 * before - layer.bias)).abs().max() < 1e-5:  # 2 W x + b
            fail("With the scale at 2, the bias was not scaled: scale the whole output, l * (W x + b).")
        fail("With the scale at 2 the output should double (l * (W x + b)); it does not.")
    # 4. the gradient reaches the scale and only the scale
    wrapped(x).sum().backward()
    if trainable[0].grad is None or trainable[0].grad.abs().sum() == 0:
        fail("No gradient reached the scale vector: use it in forward as an nn.Parameter.")


__all__ = ["check_ia3_wrap", "check_lora_on_feed_forward", "check_lora_parameter_count", "solution"]

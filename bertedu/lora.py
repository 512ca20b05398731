"""LoRA (Hu et al., 2021): fine-tune a frozen linear layer through a trainable low-rank update.

A pre-trained layer computes ``y = W x + b`` with ``W`` of shape ``(d_out, d_in)``. LoRA
freezes ``W`` and ``b`` and learns a change of ``W`` of rank at most ``r``::

    y = W x + b + (alpha / r) * B (A x)         A: (r, d_in)     B: (d_out, r)

- ``A`` starts random (Kaiming-uniform, as ``nn.Linear`` and ``peft`` do), ``B`` starts at
  **zero**: at step 0 the update ``B A`` is 0 and the model is exactly the pre-trained one;
  training moves away from it only as far as the gradient asks.
- ``alpha / r`` fixes the size of the update when ``r`` changes, so a learning rate found
  for one rank works for the others.
- Trainable parameters: ``r (d_in + d_out)`` instead of ``d_in d_out``. For a ``384 x 384``
  query projection and ``r = 8``: 6,144 instead of 147,456 (4.2%).
- **Merge** for inference: ``W' = W + (alpha / r) B A`` is an ordinary weight matrix, so the
  merged model is as fast as the original; **unmerge** subtracts it again.

Usage::

    model = BertForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    layers = apply_lora(model.bert, rank=8, alpha=16, target_modules=("query", "value"))
    mark_only_lora_trainable(model)     # bertedu.peft_methods.apply_method does this for you
    ...train...
    merge_lora(model)                   # W <- W + (alpha / r) B A, the LoRA branch switched off

Shapes: ``d_in`` / ``d_out`` the layer's in / out features, ``r`` the rank, ``*`` any
leading axes, e.g. ``(B, T)``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bertedu.errors import UserError

DEFAULT_TARGETS = ("query", "value")  # the attention projections Hu et al. adapt


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) * B A dropout(x)``, with ``base`` frozen.

    The names follow ``peft``: ``base_layer`` holds the original ``nn.Linear``;
    ``lora_A`` ``(r, d_in)`` and ``lora_B`` ``(d_out, r)`` are the trainable factors.
    """

    def __init__(self, base_layer: nn.Linear, rank: int, alpha: float | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        check_rank(rank, base_layer)
        self.base_layer = base_layer
        self.rank = rank
        self.alpha = float(2 * rank if alpha is None else alpha)  # default: scaling 2
        self.scaling = self.alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base_layer.in_features, device=base_layer.weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base_layer.out_features, rank, device=base_layer.weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's (and peft's) init of A
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        for parameter in base_layer.parameters():
            parameter.requires_grad_(False)

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    def delta_weight(self) -> Tensor:
        """The learned change of the weight, ``(alpha / r) B A``: ``(d_out, d_in)``, rank <= r."""
        return (self.lora_B @ self.lora_A) * self.scaling  # (d_out, r) @ (r, d_in)

    def forward(self, x: Tensor) -> Tensor:
        """``(*, d_in)`` -> ``(*, d_out)``."""
        y = self.base_layer(x)  # (*, d_out): W x + b, frozen
        if self.merged:  # W already holds the update
            return y
        update = (self.lora_dropout(x) @ self.lora_A.T) @ self.lora_B.T  # (*, r) -> (*, d_out)
        return y + update * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """``W <- W + (alpha / r) B A``: one matrix again, as fast as the original layer."""
        if not self.merged:
            self.base_layer.weight += self.delta_weight().to(self.base_layer.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """``W <- W - (alpha / r) B A``: the frozen weight back, to train or swap adapters."""
        if self.merged:
            self.base_layer.weight -= self.delta_weight().to(self.base_layer.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


def check_rank(rank: int, layer: nn.Linear) -> None:
    """A rank must be a whole number from 1 to ``min(d_in, d_out)`` (above it, B A cannot gain rank)."""
    largest = min(layer.in_features, layer.out_features)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= largest:
        raise UserError(f"LoRA rank {rank!r} is out of range for a {layer.in_features} -> {layer.out_features} "
                        f"layer: choose a whole number from 1 to {largest} (8 is a good start).")


def find_targets(model: nn.Module, target_modules: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the ``nn.Linear`` layers whose last name part is one of ``target_modules``.

    ``"query"`` matches ``encoder.layer.0.attention.self.query``; a dotted target such as
    ``"attention.output.dense"`` matches the end of the name (as ``peft`` does).
    Raises ``UserError`` when a target matches no linear layer.
    """
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    found = []
    for target in target_modules:
        matches = [name for name in linear if name == target or name.endswith("." + target)]
        if not matches:
            endings = sorted({name.rsplit(".", 1)[-1] for name in linear})
            raise UserError(f"LoRA target module {target!r} matches no linear layer of {type(model).__name__}; "
                            f"its linear layers end in: {', '.join(endings)}.")
        found += [name for name in matches if name not in found]
    return sorted(found, key=linear.index)


def apply_lora(model: nn.Module, rank: int = 8, alpha: float | None = None, dropout: float = 0.0,
               target_modules: tuple[str, ...] | list[str] = DEFAULT_TARGETS) -> dict[str, LoRALinear]:
    """Replace every targeted ``nn.Linear`` of ``model`` by a ``LoRALinear`` around it, in place.

    ``alpha`` defaults to ``2 * rank`` (scaling 2). Every rank is checked before any layer
    is replaced, so a bad argument leaves the model untouched. Returns the new layers by name.
    """
    names = find_targets(model, target_modules)
    for name in names:
        check_rank(rank, model.get_submodule(name))
    alpha = 2.0 * rank if alpha is None else alpha
    layers = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layers[name] = LoRALinear(getattr(parent, child), rank, alpha, dropout)
        setattr(parent, child, layers[name])
    return layers


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [module for module in model.modules() if isinstance(module, LoRALinear)]


def mark_only_lora_trainable(model: nn.Module, also: tuple[str, ...] = ("classifier.",)) -> None:
    """Freeze everything but the LoRA factors and the parameters whose names start with ``also``."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(".lora_" in name or name.startswith(also))


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA update into its weight (inference at the original speed)."""
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Take every folded update out of its weight again."""
    for layer in lora_layers(model):
        layer.unmerge()


def lora_parameter_count(d_in: int, d_out: int, rank: int) -> int:
    """What one LoRA layer trains: ``r (d_in + d_out)`` (A is ``r x d_in``, B is ``d_out x r``)."""
    return rank * (d_in + d_out)


__all__ = [
    "DEFAULT_TARGETS",
    "LoRALinear",
    "apply_lora",
    "check_rank",
    "find_targets",
    "lora_layers",
    "lora_parameter_count",
    "mark_only_lora_trainable",
    "merge_lora",
    "unmerge_lora",
]

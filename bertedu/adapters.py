"""Two more ways to fine-tune a few parameters: bottleneck adapters and BitFit.

**Adapters** (Houlsby et al., 2019). A small two-layer network is inserted after the
projection that closes each sublayer (attention's W^O and the feed-forward block's W_2),
before the residual connection and the LayerNorm::

    h = dense(x)                                  # (*, H), frozen
    h = h + W_up GELU(W_down h + b_down) + b_up   # W_down: (m, H), W_up: (H, m), m << H

``W_up`` and ``b_up`` start at zero, so an adapter starts as the identity and the model as
the pre-trained one (the same idea as LoRA's ``B = 0``). Per adapter ``2 H m + m + H``
parameters; Houlsby et al. also train the LayerNorms, and so do we.

**BitFit** (Ben Zaken et al., 2022). Train only the bias vectors (and the new
classification head): about 0.1% of BERT's parameters, nothing added.

Shapes: ``H`` hidden size, ``m`` bottleneck size, ``*`` any leading axes, e.g. ``(B, T)``.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from bertedu.errors import UserError


class BottleneckAdapter(nn.Module):
    """``h + W_up GELU(W_down h)``: down to ``m`` features and back, starting as the identity."""

    def __init__(self, hidden_size: int, bottleneck: int, init_std: float = 0.02) -> None:
        super().__init__()
        if isinstance(bottleneck, bool) or not isinstance(bottleneck, int) or not 1 <= bottleneck <= hidden_size:
            raise UserError(f"Adapter bottleneck size {bottleneck!r} is out of range: choose a whole number "
                            f"from 1 to the hidden size {hidden_size} (16 is a good start).")
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.normal_(self.down.weight, std=init_std)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)  # the identity at step 0
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """``(*, H)`` -> ``(*, H)``."""
        return hidden_states + self.up(F.gelu(self.down(hidden_states)))  # (*, m) in between


class AdaptedLinear(nn.Module):
    """A frozen ``nn.Linear`` followed by a ``BottleneckAdapter`` on its output."""

    def __init__(self, base_layer: nn.Linear, bottleneck: int) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapter = BottleneckAdapter(base_layer.out_features, bottleneck)
        self.adapter.to(base_layer.weight.device)
        for parameter in base_layer.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """``(*, d_in)`` -> ``(*, H)``."""
        return self.adapter(self.base_layer(x))


def apply_adapters(encoder: nn.Module, bottleneck: int = 16) -> dict[str, AdaptedLinear]:
    """Put an adapter after W^O and after W_2 in every layer of a ``BertModel``, in place.

    Returns the wrapped layers by name (``2 L`` of them).
    """
    names = [name for name, module in encoder.named_modules()
             if isinstance(module, nn.Linear) and name.startswith("encoder.layer.") and name.endswith(".output.dense")]
    if not names:
        raise UserError(f"{type(encoder).__name__} has no encoder.layer.*.output.dense layers to put adapters "
                        f"after: give a bertedu BertModel.")
    BottleneckAdapter(encoder.get_submodule(names[0]).out_features, bottleneck)  # checks the size first
    layers = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = encoder.get_submodule(parent_name)
        layers[name] = AdaptedLinear(getattr(parent, child), bottleneck)
        setattr(parent, child, layers[name])
    return layers


def adapter_parameter_count(hidden_size: int, bottleneck: int) -> int:
    """What one adapter trains: ``W_down`` and ``b_down`` (``m H + m``), ``W_up`` and ``b_up`` (``H m + H``)."""
    return 2 * hidden_size * bottleneck + bottleneck + hidden_size


def is_bias(name: str) -> bool:
    """BitFit's rule: a parameter called ``bias`` (in a linear layer or a LayerNorm)."""
    return name.endswith(".bias")


__all__ = [
    "AdaptedLinear",
    "BottleneckAdapter",
    "adapter_parameter_count",
    "apply_adapters",
    "is_bias",
]

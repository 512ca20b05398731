"""Multi-head self-attention, as BERT uses it (chapter 2).

Every token builds a query, a key and a value. A token's new representation is an
average of all values, weighted by how well its query matches each key:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

``M`` is the padding mask: 0 where a key is a real token, a very large negative number
where it is padding, so padding gets zero weight after the softmax. Multi-head attention
runs ``nh`` such attentions side by side on ``hs = H / nh``-dimensional slices and glues
the results back together.

Shapes: ``B`` batch, ``T`` sequence length, ``H`` hidden size, ``nh`` heads,
``hs`` head size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def padding_bias(attention_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """Turn a ``(B, T)`` 0/1 padding mask into an additive bias of shape ``(B, 1, 1, T)``.

    1 (a real token) becomes 0 and 0 (padding) becomes the most negative number of
    ``dtype``. The two singleton axes broadcast over heads and over query positions:
    every query ignores the same padded keys.
    """
    if attention_mask is None:
        return None
    real = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)
    bias = torch.zeros(real.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~real, torch.finfo(dtype).min)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    bias: Tensor | None = None,
    dropout: nn.Module | None = None,
) -> tuple[Tensor, Tensor]:
    """softmax(Q K^T / sqrt(d_k) + bias) V, written out so the probabilities can be kept.

    Args:
        query, key, value: ``(B, nh, T, hs)``.
        bias: additive mask broadcastable to ``(B, nh, T, T)``, e.g. from ``padding_bias``.
        dropout: applied to the probabilities (BERT's attention dropout).

    Returns:
        ``(context, probs)``: ``(B, nh, T, hs)`` and ``(B, nh, T, T)``;
        ``probs[b, h, i, j]`` is how much token ``i`` attends to token ``j``.
    """
    scale = 1.0 / math.sqrt(query.size(-1))
    # Without the scale, dot products grow like sqrt(d_k) and the softmax saturates.
    scores = (query @ key.transpose(-2, -1)) * scale  # (B, nh, T, T)
    if bias is not None:
        scores = scores + bias
    probs = scores.softmax(dim=-1)  # each row sums to 1 over the keys
    if dropout is not None:
        probs = dropout(probs)
    return probs @ value, probs  # (B, nh, T, hs), (B, nh, T, T)


class MultiHeadSelfAttention(nn.Module):
    """Split into heads, attend, merge: the ``attention.self`` part of a BERT layer.

    The output projection W^O that follows the merge lives in the encoder layer's
    ``attention.output.dense`` (see ``bertedu.model.AddNorm``): BERT's
    checkpoints group it with the residual connection and LayerNorm, and we keep their
    parameter names so Hugging Face checkpoints load unchanged.

    Two paths compute the same thing:
    - ``output_attentions=True``: the explicit formula above, returning the
      probabilities ``(B, nh, T, T)`` for teaching and pictures;
    - otherwise ``torch.nn.functional.scaled_dot_product_attention``, a fused kernel that
      never stores the ``T x T`` matrix (faster, less memory).
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if hidden_size % num_heads != 0:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads}): "
                f"each head gets hidden_size / num_heads dimensions."
            )
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: Tensor) -> Tensor:
        """``(B, T, H) -> (B, nh, T, hs)``: head ``h`` gets features ``h*hs .. (h+1)*hs``."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_size).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """``(B, nh, T, hs) -> (B, T, H)``: the inverse of ``split_heads``."""
        B, _, T, _ = x.shape
        return x.transpose(1, 2).reshape(B, T, self.num_heads * self.head_size)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """
        Args:
            hidden_states: ``(B, T, H)``.
            attention_mask: ``(B, T)``, 1 for real tokens and 0 for padding, or None.
            output_attentions: also return the attention probabilities.

        Returns:
            ``(context, probs)``: context ``(B, T, H)``; probs ``(B, nh, T, T)`` or None.
        """
        # 1. Project to queries, keys and values and split each into heads.
        q = self.split_heads(self.query(hidden_states))  # (B, nh, T, hs)
        k = self.split_heads(self.key(hidden_states))  # (B, nh, T, hs)
        v = self.split_heads(self.value(hidden_states))  # (B, nh, T, hs)
        # 2. Attend, every head at once; padded keys get zero weight.
        bias = padding_bias(attention_mask, q.dtype)  # (B, 1, 1, T) or None
        if output_attentions:
            context, probs = scaled_dot_product_attention(q, k, v, bias, self.dropout)
        else:
            p = self.dropout.p if self.training else 0.0
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
            probs = None
        # 3. Merge the heads back into one vector per token.
        return self.merge_heads(context), probs  # (B, T, H)

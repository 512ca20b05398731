"""Diagrams of BERT's data flow, drawn by code so they stay in step with the package.

    from bertedu.diagrams import input_embeddings_diagram
    input_embeddings_diagram(["[CLS]", "not", "good", "[SEP]"], segments=[0, 0, 0, 0])

Each function returns a matplotlib ``Figure`` (a notebook shows it; ``fig.savefig`` writes
it). They are schematic: boxes are tensors or layers, arrows the data flow, and every
tensor is labelled with its shape in the course's letters (B, T, H, nh, hs, I, V).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

# One colour per kind of thing, the same in every diagram.
COLOURS = {"token": "#f6c85f", "position": "#9dd9d2", "segment": "#d7b5e8", "sum": "#e8e8e8",
           "layer": "#a6c8ff", "head": "#ffb3a7", "output": "#b8e0a8", "input": "#ffffff"}


def box(ax: Any, x: float, y: float, text: str, kind: str = "layer", width: float = 1.6,
        height: float = 0.5, fontsize: int = 9) -> tuple[float, float]:
    """A rounded box centred on ``(x, y)``; returns its centre."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=COLOURS[kind], edgecolor="#444444", linewidth=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)
    return x, y


def arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], text: str = "") -> None:
    """An arrow from ``start`` to ``end``, optionally labelled at its middle."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="#444444", lw=1.2))
    if text:
        ax.text((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2, text, fontsize=8,
                color="#444444", va="center")


def _canvas(width: float, height: float, title: str) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")  # a diagram, not a plot: positions carry no number
    ax.set_title(title, fontsize=11)
    return fig, ax


def input_embeddings_diagram(tokens: Sequence[str] = ("[CLS]", "not", "good", "[SEP]", "boring", "[SEP]"),
                             segments: Sequence[int] | None = None) -> Any:
    """Token + position + segment embeddings, summed per position, then LayerNorm (BERT Fig. 2)."""
    tokens = list(tokens)
    if segments is None:  # segment B starts after the first [SEP]
        first_sep = tokens.index("[SEP]") if "[SEP]" in tokens else len(tokens) - 1
        segments = [0 if i <= first_sep else 1 for i in range(len(tokens))]
    if len(segments) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(segments)} segment ids; give one per token.")
    T = len(tokens)
    fig, ax = _canvas(1.6 * T + 2.2, 5.6, "BERT's input: three embeddings per position, summed (each H features)")
    rows = [("input", 4.9), ("token", 3.9), ("position", 3.0), ("segment", 2.1), ("sum", 0.9)]
    labels = {"input": "input", "token": "token\nembedding", "position": "position\nembedding",
              "segment": "segment\nembedding", "sum": "LayerNorm(sum)\n(B, T, H)"}
    for kind, y in rows:
        ax.text(0.95, y, labels[kind], ha="center", va="center", fontsize=8)
    for t, (token, segment) in enumerate(zip(tokens, segments)):
        x = 2.3 + 1.6 * t
        box(ax, x, 4.9, token, "input", width=1.3, height=0.45)
        box(ax, x, 3.9, f"E[{token}]", "token", width=1.3, height=0.45, fontsize=8)
        box(ax, x, 3.0, f"P[{t}]", "position", width=1.3, height=0.45, fontsize=8)
        box(ax, x, 2.1, f"S[{'A' if segment == 0 else 'B'}]", "segment", width=1.3, height=0.45, fontsize=8)
        for y in (3.45, 2.55):
            ax.text(x, y, "+", ha="center", va="center", fontsize=11)
        arrow(ax, (x, 1.85), (x, 1.2))
        box(ax, x, 0.9, f"x[{t}]", "sum", width=1.3, height=0.45, fontsize=8)
    return fig


def multi_head_attention_diagram(num_heads: int = 3) -> Any:
    """X -> Q, K, V -> split into heads -> softmax(QK^T/sqrt(hs)) V per head -> concat -> W^O."""
    fig, ax = _canvas(10, 6.4, f"Multi-head self-attention ({num_heads} heads drawn; nh in general)")
    x_in = box(ax, 5, 0.5, "X  (B, T, H)", "input", width=2.4)
    projections = {}
    for i, name in enumerate(("Q", "K", "V")):
        centre = box(ax, 2.5 + 2.5 * i, 1.6, f"{name} = X W^{name}  (B, T, H)", "layer", width=2.3, fontsize=8)
        arrow(ax, (x_in[0], 0.75), (centre[0], 1.35))
        projections[name] = centre
    heads = []
    for h in range(num_heads):
        x = 1.8 + 3.2 * h if num_heads > 1 else 5
        head = box(ax, x, 3.3, f"head {h}: softmax(Q K^T / sqrt(hs) + mask) V\n(B, T, hs)", "head",
                   width=3.0, height=0.75, fontsize=7.5)
        for name in ("Q", "K", "V"):
            arrow(ax, (projections[name][0], 1.85), (x, 2.92))
        heads.append(head)
    ax.text(0.1, 2.45, "split: (B, T, H) -> (B, nh, T, hs),  hs = H / nh", ha="left", fontsize=8, color="#444444",
            bbox=dict(facecolor="white", edgecolor="none", pad=1))
    box(ax, 5, 4.6, "concatenate heads  (B, T, H)", "sum", width=3.4)
    for head in heads:
        arrow(ax, (head[0], 3.68), (5, 4.35))
    box(ax, 5, 5.7, "output projection W^O  (B, T, H)", "output", width=3.4)
    arrow(ax, (5, 4.85), (5, 5.45))
    return fig


def pretraining_diagram(tokens: Sequence[str] = ("[CLS]", "the", "[MASK]", "was", "great", "[SEP]",
                                                  "i", "[MASK]", "it", "[SEP]")) -> Any:
    """BERT's two pre-training tasks: MLM on the masked positions, NSP on the [CLS] vector."""
    tokens = list(tokens)
    T = len(tokens)
    width = 1.2 * T + 1.5
    fig, ax = _canvas(width, 5.6, "Pre-training: masked language model (MLM) + next-sentence prediction (NSP)")
    for t, token in enumerate(tokens):
        x = 1.2 + 1.2 * t
        box(ax, x, 0.5, token, "input", width=1.05, height=0.42, fontsize=8)
        arrow(ax, (x, 0.72), (x, 1.35))
    box(ax, width / 2, 1.9, "BERT encoder: embeddings + L layers  ->  last_hidden_state (B, T, H)", "layer",
        width=width - 1.4, height=1.0)
    for t, token in enumerate(tokens):
        x = 1.2 + 1.2 * t
        if token == "[MASK]":
            arrow(ax, (x, 2.4), (x, 3.3))
            box(ax, x, 3.65, "MLM head\n(V logits)", "head", width=1.1, height=0.6, fontsize=7)
            arrow(ax, (x, 3.95), (x, 4.6))
            box(ax, x, 4.85, "which word?", "output", width=1.1, height=0.42, fontsize=7)
    cls_x = 1.2
    arrow(ax, (cls_x, 2.4), (cls_x, 3.3))
    box(ax, cls_x, 3.65, "pooler\n+ NSP head", "head", width=1.1, height=0.6, fontsize=7)
    arrow(ax, (cls_x, 3.95), (cls_x, 4.6))
    box(ax, cls_x, 4.85, "B follows A?", "output", width=1.1, height=0.42, fontsize=7)
    ax.text(width - 0.3, 5.35, "loss = MLM cross-entropy (masked positions only) + NSP cross-entropy",
            ha="right", fontsize=8)
    return fig


def classifier_head_diagram(num_labels: int = 2) -> Any:
    """BertForSequenceClassification: encoder -> [CLS] -> pooler (tanh) -> dropout -> Linear(H, C)."""
    fig, ax = _canvas(6.2, 6.6, "Sequence classification head")
    steps = [("input_ids (B, T)", "input"),
             ("BERT encoder -> last_hidden_state (B, T, H)", "layer"),
             ("take [CLS], the first position: (B, H)", "sum"),
             ("pooler: tanh(W_p h + b_p)  (B, H)", "layer"),
             ("dropout", "sum"),
             (f"classifier: Linear(H, {num_labels})", "head"),
             (f"logits (B, {num_labels}) -> softmax -> label", "output")]
    previous = None
    for i, (text, kind) in enumerate(steps):
        centre = box(ax, 3.1, 0.5 + 0.9 * i, text, kind, width=5.2, height=0.48)
        if previous is not None:
            arrow(ax, (3.1, previous[1] + 0.24), (3.1, centre[1] - 0.24))
        previous = centre
    return fig


DIAGRAMS = {
    "input embeddings": input_embeddings_diagram,
    "multi-head attention": multi_head_attention_diagram,
    "MLM + NSP": pretraining_diagram,
    "classifier head": classifier_head_diagram,
}

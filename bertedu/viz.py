"""Pictures of attention (chapter 2): heatmaps, an offline explorer, and bertviz input.

- ``plot_attention`` draws one head's ``(T, T)`` probabilities as a heatmap;
  ``plot_heads`` draws every head of one layer side by side.
- ``attention_explorer`` is an ipywidgets viewer (type a sentence, pick a layer and a
  head). It draws with matplotlib, so it works offline; ``show_attention`` is the
  function behind it, callable directly (e.g. in a headless run).
- ``bertviz_attention`` runs a model and returns what bertviz's ``head_view`` and
  ``model_view`` expect. bertviz loads its JavaScript from a CDN: without internet its
  views stay blank, which is why the two viewers above exist.

Works with ``bertedu.BertModel`` and with ``transformers.BertModel`` (loaded with
``attn_implementation="eager"``): both take ``output_attentions=True`` and return
``.attentions``, a tuple of ``L`` tensors ``(B, nh, T, T)``.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from bertedu.metrics import SENTIMENT_LABELS

if TYPE_CHECKING:
    from bertedu.sentiment import Prediction, SentimentClassifier


def run_with_attention(model: nn.Module, tokenizer: Any, text: str, text_pair: str | None = None,
                       max_length: int = 128) -> tuple[list[str], tuple[Tensor, ...]]:
    """Tokenize one text (or pair), run the model, return ``(tokens, attentions)``.

    ``attentions`` is a tuple of ``L`` tensors ``(1, nh, T, T)`` and ``len(tokens) == T``.
    """
    encoded = tokenizer(text, text_pair, truncation=True, max_length=max_length, return_tensors="pt")
    inputs = {name: encoded[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        output = model(**inputs, output_attentions=True)
    if not output.attentions or output.attentions[0] is None:
        raise ValueError(
            "The model returned no attention weights. A transformers model must be loaded with "
            "attn_implementation='eager' to return them."
        )
    tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    return tokens, tuple(layer.detach().cpu() for layer in output.attentions)


def bertviz_attention(model: nn.Module, tokenizer: Any, text: str, text_pair: str | None = None,
                      max_length: int = 128, decimals: int | None = 3) -> dict[str, Any]:
    """Keyword arguments for ``bertviz.head_view`` / ``model_view``:
    ``attention`` (L tensors ``(1, nh, T, T)``), ``tokens`` and, for a pair,
    ``sentence_b_start`` (the index of sentence B's first token).

    ``decimals`` rounds the probabilities: bertviz writes every number into the page, and
    3 decimals instead of 17 make a saved notebook several times smaller.
    """
    tokens, attentions = run_with_attention(model, tokenizer, text, text_pair, max_length)
    if decimals is not None:
        # float64, so that 0.162 is written as 0.162 and not as 0.16200000047683716
        attentions = tuple(layer.double().round(decimals=decimals) for layer in attentions)
    arguments: dict[str, Any] = {"attention": attentions, "tokens": tokens}
    if text_pair is not None:
        arguments["sentence_b_start"] = tokens.index("[SEP]") + 1
    return arguments


def plot_attention(probs: Tensor, tokens: Sequence[str], ax: Any = None, title: str | None = None,
                   colorbar: bool = True) -> Any:
    """Heatmap of one head: row ``i`` shows where token ``i`` looks (it sums to 1).

    Args:
        probs: ``(T, T)`` attention probabilities.
        tokens: the ``T`` tokens, used as row and column labels.
    """
    import matplotlib.pyplot as plt

    probs = probs.detach().cpu().float()
    if probs.shape != (len(tokens), len(tokens)):
        raise ValueError(f"probs has shape {tuple(probs.shape)} but there are {len(tokens)} tokens.")
    if ax is None:
        size = min(3 + 0.3 * len(tokens), 12)
        _, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(probs, cmap="viridis", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("attends to (key)")
    ax.set_ylabel("token (query)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_heads(attentions: Sequence[Tensor], tokens: Sequence[str], layer: int, columns: int = 6) -> Any:
    """Every head of one layer, small multiples. ``attentions``: L tensors ``(1, nh, T, T)``."""
    import matplotlib.pyplot as plt

    heads = attentions[layer][0]  # (nh, T, T)
    rows = -(-heads.shape[0] // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.2 * rows), squeeze=False)
    for head, ax in enumerate(axes.flat):
        if head < heads.shape[0]:
            ax.imshow(heads[head].float(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def show_attention(model: nn.Module, tokenizer: Any, text: str, layer: int = 0, head: int | str = 0) -> Any:
    """Run ``text`` through the model and draw one head (or ``"mean"`` over heads) of one layer."""
    tokens, attentions = run_with_attention(model, tokenizer, text)
    if not 0 <= layer < len(attentions):
        raise ValueError(f"layer must be in 0..{len(attentions) - 1}; got {layer}.")
    heads = attentions[layer][0]  # (nh, T, T)
    if head == "mean":
        probs, label = heads.mean(0), "mean of heads"
    else:
        if not 0 <= int(head) < heads.shape[0]:
            raise ValueError(f"head must be in 0..{heads.shape[0] - 1} or 'mean'; got {head}.")
        probs, label = heads[int(head)], f"head {head}"
    return plot_attention(probs, tokens, title=f"layer {layer}, {label}")


def attention_explorer(model: nn.Module, tokenizer: Any, text: str = "The movie was not good, it was great!") -> Any:
    """An ipywidgets explorer: a text box, a layer slider and a head menu over ``show_attention``.

    Returns the widget (display it, or let it be a cell's last value). It never blocks:
    each change redraws into an output area.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    n_layers = model.config.num_hidden_layers
    n_heads = model.config.num_attention_heads
    text_box = widgets.Text(value=text, description="Sentence", layout=widgets.Layout(width="90%"),
                            continuous_update=False)
    layer = widgets.IntSlider(value=0, min=0, max=n_layers - 1, description="Layer")
    head = widgets.Dropdown(options=[*range(n_heads), "mean"], value=0, description="Head")
    output = widgets.Output()

    def redraw(_: Any = None) -> None:
        with output:
            output.clear_output(wait=True)
            show_attention(model, tokenizer, text_box.value, layer.value, head.value)
            plt.show()

    for control in (text_box, layer, head):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([text_box, widgets.HBox([layer, head]), output])


# ---------------------------------------------------------------------------------------
# Chapter 5: a classifier's attention, its errors, and the playground
# ---------------------------------------------------------------------------------------


def attention_html(words: Sequence[str], weights: Sequence[float], prediction: Prediction | None = None,
                   title: str = "") -> str:
    """The words with a red background as strong as ``[CLS]``'s attention to them."""
    top = max(weights, default=1.0) or 1.0
    spans = " ".join(
        f'<span style="background: rgba(220, 40, 40, {w / top:.2f}); padding: 0 1px">{html.escape(word)}</span>'
        for word, w in zip(words, weights)
    )
    header = html.escape(title)
    if prediction is not None:
        header += f" <b>predicted {html.escape(prediction.label)}</b> ({prediction.probability:.1%})"
    return (f'<div style="font-family: sans-serif; font-size: 12px; line-height: 1.6; margin-bottom: 10px">'
            f'<div>{header}</div>{spans}</div>')


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str] = SENTIMENT_LABELS,
                          ax: Any = None, title: str | None = None) -> Any:
    """Counts and row percentages (the share of each true class) in a heatmap."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(3.6, 3.2))[1]
    shares = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count}\n{shares[i, j]:.1%}", ha="center", va="center",
                color="white" if shares[i, j] > 0.6 else "black", fontsize=9)
    ticks = range(len(label_names))
    ax.set_xticks(ticks, label_names)
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def sentiment_playground(classifier: SentimentClassifier, text: str = "The plot was thin, but the acting was superb.") -> Any:
    """A text box: type a review, see the probability and ``[CLS]``'s attention per word.

    ``classifier.explain(text).html()`` is the function behind it, callable directly.
    """
    import ipywidgets as widgets

    box = widgets.Textarea(value=text, layout=widgets.Layout(width="100%", height="80px"),
                           description="Review:", continuous_update=False)
    output = widgets.HTML()

    def redraw(_: Any = None) -> None:
        if not box.value.strip():
            output.value = "<i>Type a review above.</i>"
            return
        output.value = classifier.explain(box.value).html()

    box.observe(redraw, names="value")
    redraw()
    return widgets.VBox([box, output])

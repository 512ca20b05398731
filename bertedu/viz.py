"""Pictures of attention (chapter 2): heatmaps, an offline explorer, and bertviz input.

- ``plot_attention`` draws one head's ``(T, T)`` probabilities as a heatmap;
  ``plot_heads`` draws every head of one layer side by side.
- ``plot_layer_head_grid`` draws one statistic for every layer x head (chapter 6).
- ``attention_explorer`` is an ipywidgets viewer (type a sentence, pick a layer and a
  head). It draws with matplotlib, so it works offline; ``show_attention`` is the
  function behind it, callable directly (e.g. in a headless run).
- ``show_with_static`` displays a widget after its static picture, so a stored notebook
  shows the picture without a kernel.
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
    """Every head of one layer, small multiples with token labels and one colour bar.

    ``attentions``: L tensors ``(1, nh, T, T)``. Token labels sit on the left column
    (queries) and the bottom row (keys); every panel shares the 0..1 colour scale.
    """
    import matplotlib.pyplot as plt

    heads = attentions[layer][0]  # (nh, T, T)
    rows = -(-heads.shape[0] // columns)
    size = max(2.2, 0.16 * len(tokens) + 0.6)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns + 1.2, size * rows + 0.6), squeeze=False,
                             sharex=True, sharey=True)
    image = None
    for head, ax in enumerate(axes.flat):
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=6)
        if head < heads.shape[0]:
            image = ax.imshow(heads[head].float(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
        else:
            ax.axis("off")
    fig.supxlabel("attends to (key)", fontsize=9)
    fig.supylabel("token (query)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    fig.colorbar(image, ax=axes, fraction=0.02, pad=0.02, label="attention probability")
    return fig


def plot_layer_head_grid(values: Tensor, ax: Any, title: str, label: str, cmap: str = "viridis",
                         vmin: float | None = None, vmax: float | None = None,
                         mark: tuple[int, int] | None = None) -> Any:
    """One statistic for every layer x head: an ``(L, nh)`` heatmap with a colour bar.

    ``mark`` outlines one ``(layer, head)`` cell (e.g. the head picked for a pattern).
    """
    from matplotlib.patches import Rectangle

    values = values.detach().cpu().float()
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label=label)
    if mark is not None:
        ax.add_patch(Rectangle((mark[1] - 0.5, mark[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    return image


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


def show_with_static(widget: Any, static: Any, caption: str = "") -> None:
    """Display a widget together with its static picture (``static``: a matplotlib Figure,
    an HTML string, or anything IPython can display).

    A stored notebook keeps no widget state, so without a running kernel a widget shows
    as ``VBox(...)``. The picture, drawn by the same function as the widget's first view,
    is stored with the notebook and shows everywhere (a code host, nbviewer, an HTML
    export); with a kernel the live widget follows it::

        show_with_static(attention_explorer(model, tokenizer, text),
                         show_attention(model, tokenizer, text).figure)
        show_with_static(sentiment_playground(classifier, text), classifier.explain(text).html())
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    note = caption or "Static picture (stored with the notebook); the live widget below needs a running kernel."
    display(HTML(f'<div style="font-size: 12px; color: #555">{note}</div>'))
    if isinstance(static, str):
        display(HTML(static))
    else:
        display(static)
        if hasattr(static, "savefig"):
            plt.close(static)  # shown once, not again at the end of the cell
    display(_LabelledWidget(widget))


class _LabelledWidget:
    """A widget whose plain-text fallback says what it is instead of ``VBox(children=...)``."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle = dict(bundle[0] if isinstance(bundle, tuple) else bundle)
        bundle["text/plain"] = "[interactive widget: run this cell with a kernel to use it; its picture is above]"
        return bundle


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

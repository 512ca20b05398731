"""An attention viewer that needs no internet (chapter 6): one self-contained HTML page.

bertviz draws beautiful views but loads its JavaScript from a CDN, so offline (a classroom
without internet, a saved page) they stay blank. ``attention_page`` writes the same two
views with its script and style inline and the numbers embedded:

- a **head view**: the tokens twice, side by side, with a line from each token (left) to
  every token it attends to (right), as opaque as the probability; one colour per head,
  a layer menu and a check box per head; hover over a token to see only its lines;
- a **model view**: a small heatmap for every layer x head; click one to open it in the
  head view.

``attention_fragment`` is the same view as a ``<div>`` for a notebook
(``IPython.display.HTML``); every id in it carries a prefix, so several views can share
a page. ``bertedu attention "TEXT" -o view.html`` writes a page from the command line.

Shapes: ``L`` layers, ``nh`` heads, ``T`` tokens.
"""
from __future__ import annotations

import hashlib
import html
import json
from typing import Sequence

import torch
from torch import Tensor

# One colour per head (12 distinct, then repeated), as in bertviz.
HEAD_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a")

STYLE = """
.bertedu-attention { font-family: sans-serif; font-size: 13px; color: #222; }
.bertedu-attention .controls { margin: 4px 0 8px 0; }
.bertedu-attention .controls label { margin-right: 6px; white-space: nowrap; }
.bertedu-attention .head-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 2px; }
.bertedu-attention .views { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.bertedu-attention .model-view table { border-collapse: collapse; }
.bertedu-attention .model-view td, .bertedu-attention .model-view th { padding: 1px; font-weight: normal; font-size: 11px; }
.bertedu-attention canvas.thumb { border: 1px solid #ccc; cursor: pointer; display: block; }
.bertedu-attention canvas.thumb.selected { border: 2px solid #000; }
.bertedu-attention svg text { font-size: 12px; cursor: default; }
"""

SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an identifier, not a download

SCRIPT = """
(function () {
  var root = document.getElementById("__ROOT__");
  var data = JSON.parse(document.getElementById("__ROOT__-data").textContent);
  var tokens = data.tokens, att = data.attention;  // att[layer][head][query][key], per mille
  var L = att.length, H = att[0].length, T = tokens.length, colours = data.colours;
  var state = {layer: 0, heads: [], hover: -1};
  for (var h = 0; h < H; h++) state.heads.push(true);
  var svg = root.querySelector(".head-view svg");
  var layerSelect = root.querySelector(".layer-select");
  var toggles = root.querySelectorAll("input.head-toggle");
  var thumbs = root.querySelectorAll("canvas.thumb");
  var NS = "http://www.w3.org/2000/svg";  // the SVG namespace: a name, never fetched

  function el(name, attributes, text) {
    var node = document.createElementNS(NS, name);
    for (var key in attributes) node.setAttribute(key, attributes[key]);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  }

  function drawHeadView() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var row = 18, left = 120, right = 300, top = 14;
    svg.setAttribute("height", String(T * row + top));
    for (var h = 0; h < H; h++) {
      if (!state.heads[h]) continue;
      for (var i = 0; i < T; i++) {
        if (state.hover >= 0 && i !== state.hover) continue;
        for (var j = 0; j < T; j++) {
          var w = att[state.layer][h][i][j] / 1000;
          if (w < 0.02) continue;
          el("line", {x1: left, y1: top + i * row - 4, x2: right, y2: top + j * row - 4,
                      stroke: colours[h % colours.length], "stroke-width": 2, "stroke-opacity": w});
        }
      }
    }
    tokens.forEach(function (token, i) {
      var a = el("text", {x: left - 6, y: top + i * row, "text-anchor": "end",
                          "font-weight": i === state.hover ? "bold" : "normal"}, token);
      a.addEventListener("mouseenter", function () { state.hover = i; drawHeadView(); });
      a.addEventListener("mouseleave", function () { state.hover = -1; drawHeadView(); });
      el("text", {x: right + 6, y: top + i * row, "text-anchor": "start"}, token);
    });
  }

  function drawThumbs() {
    Array.prototype.forEach.call(thumbs, function (canvas) {
      var layer = Number(canvas.getAttribute("data-layer")), head = Number(canvas.getAttribute("data-head"));
      var context = canvas.getContext("2d"), cell = canvas.width / T;
      context.fillStyle = "#ffffff";
      context.fillRect(0, 0, canvas.width, canvas.height);
      for (var i = 0; i < T; i++) {
        for (var j = 0; j < T; j++) {
          var shade = Math.round(255 * (1 - att[layer][head][i][j] / 1000));
          context.fillStyle = "rgb(" + shade + "," + shade + "," + shade + ")";
          context.fillRect(j * cell, i * cell, Math.ceil(cell), Math.ceil(cell));
        }
      }
      var only = state.heads.filter(Boolean).length === 1 && state.heads[head];
      canvas.className = (layer === state.layer && only) ? "thumb selected" : "thumb";
    });
  }

  function redraw() { drawHeadView(); drawThumbs(); }

  layerSelect.addEventListener("change", function () { state.layer = Number(layerSelect.value); redraw(); });
  Array.prototype.forEach.call(toggles, function (box) {
    box.addEventListener("change", function () { state.heads[Number(box.getAttribute("data-head"))] = box.checked; redraw(); });
  });
  Array.prototype.forEach.call(thumbs, function (canvas) {
    canvas.addEventListener("click", function () {
      state.layer = Number(canvas.getAttribute("data-layer"));
      layerSelect.value = String(state.layer);
      var head = Number(canvas.getAttribute("data-head"));
      Array.prototype.forEach.call(toggles, function (box) {
        var h = Number(box.getAttribute("data-head"));
        box.checked = h === head;
        state.heads[h] = h === head;
      });
      redraw();
    });
  });
  redraw();
})();
"""


def _check(tokens: Sequence[str], attentions: Sequence[Tensor]) -> Tensor:
    """Stack ``L`` tensors ``(1, nh, T, T)`` or ``(nh, T, T)`` into ``(L, nh, T, T)``."""
    if not attentions:
        raise ValueError("No attention given: run the model with output_attentions=True.")
    stacked = torch.stack([a.reshape(-1, *a.shape[-2:]).detach().cpu().float() for a in attentions])
    if stacked.shape[-1] != len(tokens) or stacked.shape[-2] != len(tokens):
        raise ValueError(f"The attention covers {stacked.shape[-1]} tokens but {len(tokens)} tokens were given.")
    return stacked  # (L, nh, T, T)


def _json_for_script(data: object) -> str:
    """JSON that cannot close the ``<script>`` element it sits in."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def attention_fragment(tokens: Sequence[str], attentions: Sequence[Tensor], title: str = "",
                       thumb_size: int = 64) -> str:
    """The viewer as one ``<div>`` (style and script inline), for ``IPython.display.HTML``.

    Args:
        tokens: the ``T`` tokens.
        attentions: ``L`` tensors ``(1, nh, T, T)`` (or ``(nh, T, T)``).
    """
    probs = _check(tokens, attentions)  # (L, nh, T, T)
    n_layers, n_heads = probs.shape[:2]
    per_mille = (probs * 1000).round().int().tolist()
    data = {"tokens": list(tokens), "attention": per_mille, "colours": HEAD_COLOURS}
    payload = _json_for_script(data)
    root = "bertedu-attention-" + hashlib.sha1(payload.encode()).hexdigest()[:10]
    layer_options = "".join(f'<option value="{layer}">{layer}</option>' for layer in range(n_layers))
    head_boxes = "".join(
        f'<label><input type="checkbox" class="head-toggle" data-head="{head}" checked>'
        f'<span class="head-swatch" style="background:{HEAD_COLOURS[head % len(HEAD_COLOURS)]}"></span>{head}</label>'
        for head in range(n_heads)
    )
    header = "<th></th>" + "".join(f"<th>head {head}</th>" for head in range(n_heads))
    rows = "".join(
        f"<tr><th>layer {layer}</th>" + "".join(
            f'<td><canvas class="thumb" data-layer="{layer}" data-head="{head}" width="{thumb_size}" '
            f'height="{thumb_size}" title="layer {layer}, head {head}"></canvas></td>' for head in range(n_heads))
        + "</tr>" for layer in range(n_layers)
    )
    return (
        f'<div class="bertedu-attention" id="{root}">'
        f"<style>{STYLE}</style>"
        + (f"<h3>{html.escape(title)}</h3>" if title else "")
        + f'<div class="controls">Layer <select class="layer-select">{layer_options}</select> '
        f"Heads {head_boxes}</div>"
        f'<div class="views"><div class="head-view"><div>Head view: hover over a token on the left</div>'
        f'<svg width="440" height="100"></svg></div>'
        f'<div class="model-view"><div>Model view: every layer and head (click one)</div>'
        f"<table><tr>{header}</tr>{rows}</table></div></div>"
        f'<script type="application/json" id="{root}-data">{payload}</script>'
        f"<script>{SCRIPT.replace('__ROOT__', root)}</script>"
        "</div>"
    )


def attention_page(tokens: Sequence[str], attentions: Sequence[Tensor], title: str = "Attention") -> str:
    """A complete HTML page with the viewer: open it in any browser, no internet needed."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        f"{attention_fragment(tokens, attentions, title)}\n</body></html>\n"
    )

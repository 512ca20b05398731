"""The offline viewer: `bertedu attention` writes one page with every layer and head, the
numbers of the model, no network reference, and a script that runs."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from bertedu.attention_view import SVG_NAMESPACE, attention_fragment
from bertedu.commands import attention as command
from bertedu.errors import UserError

TEXT = "The movie was not good, it was great!"


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of every <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.styles: list[str] = []
        self._open: tuple[str, dict[str, str]] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag in ("script", "style"):
            self._open = (tag, attributes)

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._open = None

    def handle_data(self, data):
        if self._open and self._open[0] == "script":
            self.scripts.append((self._open[1], data))
        elif self._open and self._open[0] == "style":
            self.styles.append(data)


def run_command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return command.run(parser.parse_args(list(argv)))


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, Page]:
    path = tmp_path_factory.mktemp("view") / "view.html"
    assert run_command(TEXT, "-o", str(path)) == 0
    parsed = Page()
    parsed.feed(path.read_text(encoding="utf-8"))
    return path, parsed


def data_of(parsed: Page) -> dict:
    (payload,) = [text for attributes, text in parsed.scripts if attributes.get("type") == "application/json"]
    return json.loads(payload)


def test_every_layer_and_head_is_on_the_page(page):
    _, parsed = page
    thumbs = {(int(a["data-layer"]), int(a["data-head"])) for tag, a in parsed.tags if tag == "canvas"}
    assert thumbs == {(layer, head) for layer in range(6) for head in range(12)}
    layers = [int(a["value"]) for tag, a in parsed.tags if tag == "option"]
    assert layers == list(range(6))
    heads = [int(a["data-head"]) for tag, a in parsed.tags if tag == "input" and "head-toggle" in a.get("class", "")]
    assert heads == list(range(12))


def test_the_page_holds_the_tokens_and_transformers_attention(page):
    transformers = pytest.importorskip("transformers")
    from bertedu.checkpoint import default_checkpoint
    from bertedu.tokenization import load_fast_tokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder = default_checkpoint()
    tokenizer = load_fast_tokenizer(folder)
    reference = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    encoded = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        expected = torch.stack(reference(**encoded, output_attentions=True).attentions)[:, 0]  # (L, nh, T, T)
    data = data_of(page[1])
    assert data["tokens"] == tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
    stored = torch.tensor(data["attention"], dtype=torch.float32) / 1000  # per mille
    assert stored.shape == expected.shape
    assert (stored - expected).abs().max() <= 0.0005 + 1e-6


def test_no_network_reference(page):
    path, parsed = page
    text = path.read_text(encoding="utf-8")
    for tag, attributes in parsed.tags:
        assert tag not in ("link", "iframe", "img", "object", "embed"), tag
        assert "src" not in attributes and "href" not in attributes, (tag, attributes)
    assert all("url(" not in style and "@import" not in style for style in parsed.styles)
    # The only "http" on the page is the SVG namespace, an identifier the browser never fetches.
    assert text.replace(SVG_NAMESPACE, "").lower().count("http") == 0
    assert "cdn" not in text.lower() and "require(" not in text


NODE_DOM = r"""
// A minimal DOM, just enough to run the viewer's script outside a browser.
var counts = {line: 0, text: 0, fillRect: 0, listeners: 0};
function Element(name, attributes) {
  this.name = name; this.attributes = attributes || {}; this.children = []; this.listeners = {};
  this.textContent = ""; this.value = "0"; this.checked = true; this.width = 64; this.height = 64;
}
Element.prototype.setAttribute = function (k, v) { this.attributes[k] = String(v); };
Element.prototype.getAttribute = function (k) { return this.attributes[k]; };
Element.prototype.appendChild = function (c) { this.children.push(c); if (c.name in counts) counts[c.name]++; return c; };
Element.prototype.removeChild = function (c) { this.children.splice(this.children.indexOf(c), 1); };
Object.defineProperty(Element.prototype, "firstChild", {get: function () { return this.children[0] || null; }});
Element.prototype.addEventListener = function (e, f) { this.listeners[e] = f; counts.listeners++; };
Element.prototype.getContext = function () {
  return {fillRect: function () { counts.fillRect++; }, set fillStyle(v) {}};
};
var page = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
var svg = new Element("svg"), select = new Element("select");
var toggles = [], thumbs = [];
for (var h = 0; h < page.heads; h++) toggles.push(new Element("input", {"data-head": String(h)}));
for (var l = 0; l < page.layers; l++) for (var h = 0; h < page.heads; h++)
  thumbs.push(new Element("canvas", {"data-layer": String(l), "data-head": String(h)}));
var root = new Element("div");
root.querySelector = function (s) { return s.indexOf("svg") >= 0 ? svg : select; };
root.querySelectorAll = function (s) { return s.indexOf("canvas") >= 0 ? thumbs : toggles; };
global.document = {
  getElementById: function (id) { return id === page.root ? root : {textContent: page.data}; },
  createElementNS: function (ns, name) { return new Element(name); }
};
eval(page.script);
var afterLoad = {line: counts.line, fillRect: counts.fillRect};
thumbs[page.heads + 1].listeners.click();  // layer 1, head 1
var oneHead = svg.children.filter(function (c) { return c.name === "line"; }).length;
console.log(JSON.stringify({afterLoad: afterLoad, text: counts.text, oneHead: oneHead,
                            layer: select.value, listeners: counts.listeners}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_script_runs_and_draws(tmp_path):
    tokens = ["[CLS]", "not", "bad", "[SEP]"]
    probs = torch.eye(4).expand(2, 3, 4, 4)  # (L=2, nh=3, T, T): each token attends to itself
    parsed = Page()
    parsed.feed(attention_fragment(tokens, list(probs)))
    (data,) = [text for a, text in parsed.scripts if a.get("type") == "application/json"]
    (script,) = [text for a, text in parsed.scripts if not a.get("type")]
    root = next(a["id"] for tag, a in parsed.tags if tag == "div" and "id" in a)
    (tmp_path / "page.json").write_text(json.dumps(
        {"root": root, "data": data, "script": script, "layers": 2, "heads": 3}))
    (tmp_path / "dom.js").write_text(NODE_DOM)
    result = subprocess.run(["node", str(tmp_path / "dom.js"), str(tmp_path / "page.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    drawn = json.loads(result.stdout)
    assert drawn["afterLoad"]["line"] == 3 * 4  # 3 heads x 4 tokens, one line each (the diagonal)
    assert drawn["afterLoad"]["fillRect"] == 2 * 3 * (1 + 16)  # every thumbnail: background + T x T cells
    assert drawn["oneHead"] == 4 and drawn["layer"] == "1"  # a click shows that one head


def test_user_errors(tmp_path):
    with pytest.raises(UserError, match="empty"):
        run_command("  ", "-o", str(tmp_path / "x.html"))
    with pytest.raises(UserError, match="--model"):
        run_command(TEXT, "--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.html"))
    with pytest.raises(ValueError, match="tokens"):
        attention_fragment(["[CLS]", "[SEP]"], [torch.eye(3)[None]])

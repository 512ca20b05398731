"""The notebooks and the package must not drift apart (the one-source-of-truth check).

Each chapter shows the finished component with a cell ``show_source(bertedu.x.Name)``;
its stored output is the source as it was when the notebook last ran. If the module has
changed since, this test fails and says which notebook to re-run. nbval then re-executes
every notebook, so the chapters also keep working against the current package.
"""
from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("nbformat", reason="the notebook stack is not installed here")

from bertedu.course import VOLATILE_CELL_METADATA  # noqa: E402
from bertedu.source import render_source, source_details_html  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
# show_source(bertedu.x.Y) or show_source(bertedu.x.Y, part=("first", "last"))
SHOW_SOURCE = re.compile(r"^show_source\((bertedu(?:\.\w+)+)(?:,\s*part=(\(.*\)))?\)\s*$", re.MULTILINE)
MAX_BYTES = 2_500_000


def resolve(dotted: str) -> object:
    """'bertedu.model.BertModel' -> the class (longest importable module prefix, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


def stdout_of(cell: dict) -> str:
    return "".join("".join(out.get("text", "")) for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")


def html_of(cell: dict) -> str:
    return "".join("".join(out.get("data", {}).get("text/html", "")) for out in cell.get("outputs", []))


def shown_components(notebook: Path) -> list[tuple[int, str, tuple[str, str] | None, str, str]]:
    """(cell index, dotted name, part, stored stdout, stored HTML) for every show_source cell."""
    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for index, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            for dotted, part in SHOW_SOURCE.findall(source):
                found.append((index, dotted, ast.literal_eval(part) if part else None, stdout_of(cell), html_of(cell)))
    return found


def is_outdated(dotted: str, part: tuple[str, str] | None, stored: str, stored_html: str) -> bool:
    obj = resolve(dotted)
    if stored != render_source(obj, part):
        return True
    return part is not None and stored_html != source_details_html(obj)  # the full source, one click away


def outdated_cells(notebook: Path) -> list[tuple[int, str]]:
    """The show_source cells whose stored output differs from the package's current source."""
    return [(index, dotted) for index, dotted, part, stored, stored_html in shown_components(notebook)
            if is_outdated(dotted, part, stored, stored_html)]


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_welcome.ipynb"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_shown_source_matches_the_package(notebook):
    outdated = outdated_cells(notebook)
    assert not outdated, (
        f"{notebook.name} shows outdated package code in (cell, component) {outdated}: the module "
        f"changed since the notebook last ran. Re-run it: `bertedu course --in-place --only {notebook.stem[:2]}`."
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_executed_small_and_clean(notebook):
    assert notebook.stat().st_size < MAX_BYTES, f"{notebook.name}: trim large outputs (bertviz HTML, logs)"
    nb = json.loads(notebook.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{notebook.name}: store outputs of a full quick run"
    assert any("describe_run(" in "".join(c["source"]) for c in code), f"{notebook.name}: call describe_run()"
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), (
        f"{notebook.name}: every cell needs its own id (nbformat 4.5); run nbformat.validator.normalize")
    for cell in code:
        assert not set(cell.get("metadata", {})) & set(VOLATILE_CELL_METADATA), (
            f"{notebook.name}: volatile metadata; re-run with `bertedu course --in-place`")


def test_chapters_after_the_first_show_package_components():
    chapters = [nb for nb in NOTEBOOKS if not nb.name.startswith("00_")]
    missing = [nb.name for nb in chapters if not shown_components(nb)]
    assert not missing, f"these chapters never show the package code they build: {missing}"


def test_the_sync_check_catches_drift(tmp_path):
    """The check must be able to fail: a stored output from an older source is reported."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    current = render_source(resolve("bertedu.data.clean_review"))
    stale = current.replace("newlines", "spaces")
    cells = [new_code_cell("show_source(bertedu.data.clean_review)", outputs=[new_output("stream", name="stdout", text=text)])
             for text in (current, stale)]
    path = tmp_path / "99_drift.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    assert outdated_cells(path) == [(1, "bertedu.data.clean_review")]


def test_the_sync_check_catches_drift_in_a_part_and_in_its_full_source(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    obj, part = resolve("bertedu.model.BertModel.forward"), ("embedded = self.embeddings", "pooler_output=")
    shown = render_source(obj, part)
    assert "(the part derived above:" in shown and len(shown) < len(render_source(obj))
    details = source_details_html(obj)
    source = 'show_source(bertedu.model.BertModel.forward, part=("embedded = self.embeddings", "pooler_output="))'
    cells = [new_code_cell(source, outputs=[new_output("stream", name="stdout", text=text),
                                            new_output("display_data", data={"text/html": page})])
             for text, page in ((shown, details), (shown, details.replace("def", "fed")),
                                (shown.replace("self.encoder", "self.decoder"), details))]
    path = tmp_path / "99_drift.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    assert outdated_cells(path) == [(1, "bertedu.model.BertModel.forward"), (2, "bertedu.model.BertModel.forward")]


WIDGET = "application/vnd.jupyter.widget-view+json"
PROGRESS_BAR = re.compile(r"\d+/\d+ \[")  # tqdm's plain text: " 40%|####  | 240/600 [00:10<00:15, ...]"


def widgets_without_picture(notebook: Path) -> list[int]:
    """Cells that store a widget (not a progress bar) with no picture (PNG or HTML) before it.

    A stored notebook keeps no widget state: without a kernel such a cell shows ``VBox(...)``.
    ``bertedu.viz.show_with_static`` stores the picture first.
    """
    found = []
    for index, cell in enumerate(json.loads(notebook.read_text())["cells"]):
        seen_picture = False
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET in data and not PROGRESS_BAR.search("".join(data.get("text/plain", ""))) and not seen_picture:
                found.append(index)
                break
            seen_picture = seen_picture or "image/png" in data or "text/html" in data
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_widget_has_a_static_picture(notebook):
    bare = widgets_without_picture(notebook)
    assert not bare, (f"{notebook.name}: cells {bare} store a widget with no picture before it; a copy read "
                      "without a kernel shows VBox(...). Display it with bertedu.viz.show_with_static.")


def test_the_widget_check_catches_a_bare_widget(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    widget = {WIDGET: {"model_id": "x", "version_major": 2, "version_minor": 0}}
    bare = new_output("display_data", data={**widget, "text/plain": "VBox(children=(Text(value='a'),))"})
    bar = new_output("display_data", data={**widget, "text/plain": "  0%|          | 0/600 [00:00<?, ?it/s]"})
    picture = new_output("display_data", data={"text/html": "<table></table>", "text/plain": "<HTML>"})
    cells = [new_code_cell("w", outputs=[bare]), new_code_cell("w", outputs=[bar]),
             new_code_cell("w", outputs=[picture, bare]), new_code_cell("w", outputs=[bare, picture])]
    path = tmp_path / "99_widgets.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    assert widgets_without_picture(path) == [0, 3]

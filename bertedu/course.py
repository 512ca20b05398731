"""Run the whole course headless: every chapter notebook, in order, like a learner would.

``bertedu course`` executes ``notebooks/NN_*.ipynb`` one after another in a fresh kernel
each, with a progress bar per chapter, and writes the executed copy and an HTML page of
each to ``build/course/``. It stops at the first failing cell and says which chapter,
which cell and what went wrong.

``bertedu course --in-place`` is for course authors: it re-executes the notebooks in place
(quick mode) and strips volatile metadata, so the stored outputs a code host shows come
from the current package (the sync test checks this).
"""
from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import nbformat

from bertedu.errors import UserError
from bertedu.paths import build_dir, notebooks_dir
from bertedu.settings import describe_run

# Cell metadata that changes on every run and would make every re-run a diff.
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


class ChapterFailed(RuntimeError):
    """A cell raised: the message names the chapter, the cell and the error.

    ``notebook`` holds the outputs up to and including the failing cell.
    """

    def __init__(self, message: str, notebook: nbformat.NotebookNode) -> None:
        super().__init__(message)
        self.notebook = notebook


def chapter_notebooks(only: list[str] | None = None) -> list[Path]:
    """The course's notebooks in chapter order, optionally only those matching ``only``."""
    notebooks = sorted(notebooks_dir().glob("[0-9][0-9]*_*.ipynb"))
    if only:
        notebooks = [nb for nb in notebooks if any(key in nb.name for key in only)]
        if not notebooks:
            raise UserError(f"No chapter notebook matches {only}; try e.g. `--only 03`.")
    return notebooks


def execute_notebook(path: Path, timeout: int = 1800) -> nbformat.NotebookNode:
    """Execute one notebook in a fresh kernel (this Python), with a cell progress bar."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from tqdm.auto import tqdm

    notebook = nbformat.read(path, as_version=4)
    code_cells = sum(cell.cell_type == "code" for cell in notebook.cells)
    with tqdm(total=code_cells, desc=path.stem, unit="cell", file=sys.stdout) as bar:
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",  # jupyter_client runs it with this interpreter
            resources={"metadata": {"path": str(path.parent)}},
            on_cell_executed=lambda **_: bar.update(1),
        )
        try:
            client.execute()
        except CellExecutionError as error:
            raise ChapterFailed(_failure_message(path, notebook, error), notebook) from None
        except CellTimeoutError as error:
            raise ChapterFailed(f"{path.name}: a cell ran longer than {timeout} s (--timeout). "
                                f"{str(error).splitlines()[0]}", notebook) from None
    return notebook


def _failure_message(path: Path, notebook: nbformat.NotebookNode, error: Exception) -> str:
    failed = [i for i, cell in enumerate(notebook.cells)
              if any(out.get("output_type") == "error" for out in cell.get("outputs", []))]
    where = f"cell {failed[0]}" if failed else "a cell"
    summary = str(error).strip().splitlines()
    return (f"{path.name} failed at {where}.\n" + "\n".join(summary[-12:]) +
            f"\nOpen {path} in JupyterLab and run it up to that cell to investigate.")


def strip_volatile_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop run timings and widget state so a re-run changes only real outputs."""
    notebook = copy.deepcopy(notebook)
    for key in ("widgets", "papermill", "jupytext"):
        notebook.metadata.pop(key, None)
    # Every chapter runs on the course's own Python: name the standard kernel.
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    for cell in notebook.cells:
        for key in VOLATILE_CELL_METADATA:
            cell.metadata.pop(key, None)
    return notebook


def write_html(notebook: nbformat.NotebookNode, target: Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(notebook)
    target.write_text(body, encoding="utf-8")


def run_chapters(only: list[str] | None = None, *, in_place: bool = False, html: bool = True,
               timeout: int = 1800) -> list[tuple[str, float]]:
    """Execute the chapters in order; return (chapter, seconds) for each."""
    describe_run()
    out_dir = build_dir() / "course"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for path in chapter_notebooks(only):
        start = time.perf_counter()
        try:
            executed = strip_volatile_metadata(execute_notebook(path, timeout))
        except ChapterFailed as failure:  # keep what ran, for the learner to read
            nbformat.write(strip_volatile_metadata(failure.notebook), out_dir / path.name)
            raise
        nbformat.write(executed, path if in_place else out_dir / path.name)
        if html:
            write_html(executed, out_dir / f"{path.stem}.html")
        timings.append((path.stem, time.perf_counter() - start))
        print(f"  {path.stem}: done in {timings[-1][1]:.0f} s")
    return timings

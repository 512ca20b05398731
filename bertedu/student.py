"""The student edition: the chapter notebooks with the solutions taken out.

A chapter marks its solutions in one of three ways (the same in every chapter):

- in a markdown cell, a collapsible block whose summary names a solution,
  ``<details><summary>Show a solution</summary> ... </details>``, is cut out (the rest of
  the cell, e.g. the next exercise's text, stays);
- a whole cell carries the cell tag ``solution`` (JupyterLab: the property inspector,
  "Cell tags"; or ``"metadata": {"tags": ["solution"]}``). It is dropped;
- inside a code cell, the lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
  (nbgrader's markers) are replaced by ``raise NotImplementedError`` at the same indent.
  The cell's outputs are cleared, since they came from the solution.

Every other cell is kept as it is, outputs included: the derivations, the plots and the
exercise stubs (which print "not implemented yet" under the checkers). The edition runs
under nbval like the full one.

The reference solutions also live in the package (``bertedu/exercises/chNN.py``); the
student edition cannot take them out of an installed package. ``BERTEDU_HIDE_SOLUTIONS=1``
makes ``chNN.solution(name)`` decline (docs/teaching.md says what that does and does not do).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat

from bertedu.errors import UserError
from bertedu.files import atomic_write

SOLUTION_TAG = "solution"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB = "raise NotImplementedError"
# <details><summary>Show a solution</summary> ... </details>, in any case and spacing
SOLUTION_DETAILS = re.compile(r"<details>\s*<summary>[^<]*solution[^<]*</summary>.*?</details>\s*",
                              re.IGNORECASE | re.DOTALL)


def is_solution_cell(cell: nbformat.NotebookNode) -> bool:
    """True for a cell tagged ``solution``."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def strip_solution_blocks(source: str, where: str = "a cell") -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` block by a stub line."""
    out: list[str] = []
    inside = False
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if inside:
                raise UserError(f"{where}: a second {BEGIN_SOLUTION} before {END_SOLUTION}.")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + STUB)
        elif marker == END_SOLUTION:
            if not inside:
                raise UserError(f"{where}: {END_SOLUTION} without {BEGIN_SOLUTION}.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise UserError(f"{where}: {BEGIN_SOLUTION} without {END_SOLUTION}; close the block.")
    return "\n".join(out)


def student_notebook(notebook: nbformat.NotebookNode, name: str = "the notebook") -> nbformat.NotebookNode:
    """A copy of ``notebook`` without solution cells and with solution blocks stubbed."""
    notebook = copy.deepcopy(notebook)
    cells = []
    for index, cell in enumerate(notebook.cells):
        if is_solution_cell(cell):
            continue
        if cell.cell_type == "markdown" and SOLUTION_DETAILS.search(cell.source):
            cell.source = SOLUTION_DETAILS.sub("", cell.source).strip()
            if not cell.source:
                continue
        if BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source:
            cell.source = strip_solution_blocks(cell.source, f"{name}, cell {index}")
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    notebook.cells = cells
    notebook.metadata["bertedu"] = {"edition": "student"}
    return notebook


def solution_text(notebook: nbformat.NotebookNode) -> list[str]:
    """The lines of a notebook's solutions (tagged cells, details blocks, marked blocks), stripped."""
    lines = []
    for cell in notebook.cells:
        if is_solution_cell(cell):
            lines += cell.source.split("\n")
        elif cell.cell_type == "markdown":
            for block in SOLUTION_DETAILS.findall(cell.source):
                lines += block.split("\n")
        elif BEGIN_SOLUTION in cell.source:
            inside = False
            for line in cell.source.split("\n"):
                if line.strip() in (BEGIN_SOLUTION, END_SOLUTION):
                    inside = line.strip() == BEGIN_SOLUTION
                elif inside:
                    lines.append(line)
    return [line.strip() for line in lines if line.strip()]


def write_student_edition(notebooks: Sequence[Path], out_dir: str | Path) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; return the new paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        student = student_notebook(nbformat.read(path, as_version=4), path.name)
        target = out_dir / path.name
        atomic_write(target, lambda tmp, nb=student: nbformat.write(nb, str(tmp)))
        written.append(target)
    return written

"""The student edition: no solution text survives, the stubs stay, the command writes every chapter,
and it runs under nbval inside `make test` (see test_the_student_edition_runs_under_nbval)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from bertedu.errors import UserError
from bertedu.student import solution_text, strip_solution_blocks, student_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]*_*.ipynb"))  # 05a, 05b too


def cell_text(cell: dict) -> str:
    outputs = "".join(json.dumps(out) for out in cell.get("outputs", []))
    return cell["source"] + outputs


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    result = subprocess.run([sys.executable, "-m", "bertedu.cli", "student-edition", str(out)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_solution_text_survives(notebook, student_edition):
    original = nbformat.read(notebook, as_version=4)
    student = nbformat.read(student_edition / notebook.name, as_version=4)
    solutions = set(solution_text(original))
    # A line a derivation above also shows is not a give-away (e.g. WordPiece's inner loop).
    elsewhere = "\n".join(c.source for c in student_notebook(original).cells)
    distinctive = {line for line in solutions if len(line) >= 20 and line not in elsewhere}
    text = "\n".join(cell_text(c) for c in student.cells)
    survivors = [line for line in distinctive if line in text]
    assert not survivors, f"{notebook.name}: solution lines in the student edition: {survivors[:3]}"
    lowered = text.lower()
    assert "show a solution" not in lowered and "### begin solution" not in lowered
    stubs = sum("raise NotImplementedError" in c.source for c in student.cells if c.cell_type == "code")
    if "exercises import" in "\n".join(c.source for c in original.cells):
        assert stubs >= 1, f"{notebook.name}: a chapter with exercises keeps its stubs"
    assert student.metadata["bertedu"] == {"edition": "student"}


def test_the_chapters_with_solutions_lose_them():
    with_solutions = [nb for nb in NOTEBOOKS if solution_text(nbformat.read(nb, as_version=4))]
    assert len(with_solutions) >= 3  # the check above is not vacuous


def notebook_of(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def test_markers_tags_and_details_blocks():
    code = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ncheck(f)")
    code.outputs = [nbformat.v4.new_output("stream", text="✓ f: passed")]
    tagged = nbformat.v4.new_markdown_cell("The answer is 42.")
    tagged.metadata["tags"] = ["solution"]
    details = nbformat.v4.new_markdown_cell("<details><summary>Show a solution</summary>\n\n```python\nreturn 2 * x\n```\n"
                                            "</details>\n\n**Exercise 2.** Next one.")
    student = student_notebook(notebook_of(code, tagged, details))
    assert [c.source for c in student.cells] == [
        "def f(x):\n    raise NotImplementedError\n\ncheck(f)", "**Exercise 2.** Next one."]
    assert student.cells[0].outputs == [] and student.cells[0].execution_count is None
    assert solution_text(notebook_of(code, tagged, details)) == [
        "return 2 * x", "The answer is 42.", "<details><summary>Show a solution</summary>", "```python",
        "return 2 * x", "```", "</details>"]


def test_unbalanced_markers_are_a_user_error():
    with pytest.raises(UserError, match="without ### END SOLUTION"):
        strip_solution_blocks("    ### BEGIN SOLUTION\n    x = 1")
    with pytest.raises(UserError, match="without ### BEGIN SOLUTION"):
        strip_solution_blocks("x = 1\n### END SOLUTION")


# -- the student edition under nbval, inside `make test` ------------------------------------


def code_cells(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def run_nbval(path: Path) -> subprocess.CompletedProcess:
    """pytest --nbval-lax on one notebook, with the project's settings (pyproject, conftest)."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(REPO),
                           "-c", str(REPO / "pyproject.toml"), str(path)],
                          capture_output=True, text=True, cwd=REPO)


def assert_student_edition_runs(original: nbformat.NotebookNode, student_path: Path) -> bool:
    """Every stub of the student notebook says "not implemented yet" in its stored output; if its
    code cells differ from ``original``'s it is run under nbval (returns True), else not (False)."""
    student = nbformat.read(student_path, as_version=4)
    code = [cell for cell in student.cells if cell.cell_type == "code"]
    for i, cell in enumerate(code):  # each stub says so when run (its checker, or the cell's own try/except)
        if "raise NotImplementedError" in cell.source:
            said = "".join(json.dumps(out) for later in code[i:i + 2] for out in later.get("outputs", []))
            assert "not implemented yet" in said, f"{student_path.name}: code cell {i} has a stub that does not say so"
    if code_cells(student) == code_cells(original):
        return False
    result = run_nbval(student_path)
    assert result.returncode == 0, f"{student_path.name}, student edition, under nbval:\n{result.stdout[-3000:]}"
    return True


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_student_edition_runs_under_nbval(notebook, student_edition):
    """`make test` runs every chapter under nbval once. A student notebook whose code cells are
    exactly the full edition's (today: all of them; only markdown solution blocks differ)
    executes that same code, stubs included, so the run of notebooks/ in the same `make test`
    is its nbval run; running it again would double CI's time and test nothing new. A student
    notebook whose code differs (a ``### BEGIN SOLUTION`` block became a stub, a tagged cell
    was dropped) is run under nbval here, in its own folder."""
    assert_student_edition_runs(nbformat.read(notebook, as_version=4), student_edition / notebook.name)


def test_a_student_notebook_whose_code_differs_is_run_under_nbval(tmp_path):
    """The branch above that runs nbval is real: a marked solution becomes a stub and runs; a
    later cell that needs the solution's result fails the run."""
    define = nbformat.v4.new_code_cell(
        "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\n"
        "try:\n    assert double(2) == 4\n    print('passed')\nexcept NotImplementedError:\n"
        "    print('`double` is not implemented yet')")
    define.outputs = [nbformat.v4.new_output("stream", text="passed")]
    good = notebook_of(define, nbformat.v4.new_code_cell("print('next cell')"))
    write_student_edition_of(good, tmp_path / "good.ipynb")
    assert assert_student_edition_runs(good, tmp_path / "good.ipynb")  # ran under nbval, and passed
    needs_solution = notebook_of(define, nbformat.v4.new_code_cell("print(double(3))"))
    write_student_edition_of(needs_solution, tmp_path / "bad.ipynb")
    with pytest.raises(AssertionError, match="NotImplementedError"):
        assert_student_edition_runs(needs_solution, tmp_path / "bad.ipynb")


def write_student_edition_of(notebook: nbformat.NotebookNode, path: Path) -> None:
    student = student_notebook(notebook)
    # the stub cell's outputs were cleared with the solution; give it what a run prints
    student.cells[0].outputs = [nbformat.v4.new_output("stream", text="`double` is not implemented yet\n")]
    student.cells[0].execution_count = 1
    nbformat.write(student, path)

"""Show the package's own source inside a chapter: the module is the single source of truth.

A chapter derives a component step by step, then calls ``show_source(bertedu.X.Y)`` to
show the finished version it will import from now on. The cell's stored output is the
rendered source; ``tests/test_notebook_sync.py`` re-renders every such cell and fails when
the package changed but the notebook was not re-run (the drift d2l users hit).
"""
from __future__ import annotations

import inspect
from pathlib import Path

from bertedu.paths import PACKAGE_DIR


def render_source(obj: object) -> str:
    """The source of a function, class or module, headed by where it is defined."""
    obj = inspect.unwrap(obj)  # type: ignore[arg-type]  # a decorator (torch.no_grad) must not hide the code
    source_file = Path(inspect.getsourcefile(obj)).resolve()  # type: ignore[arg-type]
    relative = source_file.relative_to(PACKAGE_DIR.parent).as_posix()
    # No line numbers in the header: editing an unrelated function above must not
    # count as drift.
    name = "" if inspect.ismodule(obj) else f" - {obj.__qualname__}"  # type: ignore[attr-defined]
    header = f"# Defined in {relative}{name}"
    return header + "\n" + inspect.getsource(obj).rstrip() + "\n"  # type: ignore[arg-type]


def show_source(obj: object) -> None:
    """Print ``render_source(obj)``: used in notebooks, compared by the sync test."""
    print(render_source(obj), end="")

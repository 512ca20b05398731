"""Show the package's own source inside a chapter: the module is the single source of truth.

A chapter derives a component step by step, then calls ``show_source(bertedu.X.Y)`` to
show the finished version it will import from now on. The cell's stored output is the
rendered source; ``tests/test_notebook_sync.py`` re-renders every such cell and fails when
the package changed but the notebook was not re-run (the drift d2l users hit).

A long function shows only the part the chapter derived,
``show_source(bertedu.x.f, part=("first line text", "last line text"))``, with the full
source one click away in a collapsible ``<details>`` block below it.
"""
from __future__ import annotations

import html
import inspect
from pathlib import Path

from bertedu.paths import PACKAGE_DIR


def render_source(obj: object, part: tuple[str, str] | None = None) -> str:
    """The source of a function, class or module, headed by where it is defined.

    ``part=(first, last)``: only the lines from the first one containing ``first`` to the
    next one containing ``last`` (inclusive), between ``...`` marks.
    """
    obj = inspect.unwrap(obj)  # type: ignore[arg-type]  # a decorator (torch.no_grad) must not hide the code
    source_file = Path(inspect.getsourcefile(obj)).resolve()  # type: ignore[arg-type]
    relative = source_file.relative_to(PACKAGE_DIR.parent).as_posix()
    # No line numbers in the header: editing an unrelated function above must not
    # count as drift.
    name = "" if inspect.ismodule(obj) else f" - {obj.__qualname__}"  # type: ignore[attr-defined]
    header = f"# Defined in {relative}{name}"
    source = inspect.getsource(obj).rstrip()  # type: ignore[arg-type]
    if part is None:
        return header + "\n" + source + "\n"
    lines = source.split("\n")
    first, last = part
    start = next((i for i, line in enumerate(lines) if first in line), None)
    if start is None:
        raise ValueError(f"No line of {name.lstrip(' -') or relative} contains {first!r}.")
    end = next((i for i in range(start, len(lines)) if last in lines[i]), None)
    if end is None:
        raise ValueError(f"No line after {first!r} contains {last!r}.")
    shown = end - start + 1
    return (f"{header} (the part derived above: {shown} of {len(lines)} lines; the full source is below)\n"
            + ("    ...\n" if start > 0 else "") + "\n".join(lines[start:end + 1]) + "\n"
            + ("    ...\n" if end < len(lines) - 1 else ""))


def source_details_html(obj: object) -> str:
    """The full source in a collapsible HTML ``<details>`` block (closed by default)."""
    unwrapped = inspect.unwrap(obj)  # type: ignore[arg-type]
    name = getattr(unwrapped, "__qualname__", getattr(unwrapped, "__name__", "the module"))
    source = render_source(obj)
    return (f"<details><summary>Full source of <code>{html.escape(name)}</code> "
            f"({source.count(chr(10)) - 1} lines)</summary>\n<pre>{html.escape(source)}</pre>\n</details>")


def show_source(obj: object, part: tuple[str, str] | None = None) -> None:
    """Print ``render_source(obj, part)``: used in notebooks, compared by the sync test.

    With ``part``, the full source follows as a collapsible HTML block.
    """
    print(render_source(obj, part), end="")
    if part is not None:
        from IPython.display import HTML, display

        display(HTML(source_details_html(obj)))

"""pytest settings for the notebooks (nbval) that pyproject.toml cannot express.

nbval waits a hard-coded 5 s for each output message after a cell has finished
(nbval issues #136 and #231: "Timeout of 5 seconds exceeded waiting for output"). On a busy
machine the messages of a long training cell (its progress bar) can take longer to arrive,
and CI failed chapter 5 that way after the cell had run correctly. We give them a minute;
a cell that really hangs is still stopped by ``--nbval-cell-timeout``.
"""
from __future__ import annotations

NOTEBOOK_OUTPUT_TIMEOUT_S = 60


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = NOTEBOOK_OUTPUT_TIMEOUT_S

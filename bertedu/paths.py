"""Where data, checkpoints and build output live.

- ``BERTEDU_DATA_DIR`` sets the data folder. Otherwise, in a checkout of the course it is
  the repository's ``data/`` folder (git-ignored), and for an installed package
  ``~/.cache/bertedu``.
- Checkpoints the course trains go to ``<data>/checkpoints/<name>/``.
- ``bertedu course`` writes executed notebooks and HTML to ``build/course/``.
"""
from __future__ import annotations

import os
from pathlib import Path

from bertedu.errors import UserFileNotFoundError

DATA_DIR_ENV = "BERTEDU_DATA_DIR"
PACKAGE_DIR = Path(__file__).resolve().parent


def repository_root() -> Path | None:
    """The course checkout this package lives in, or None for an installed package."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root
    return None


def data_dir() -> Path:
    """The folder for downloaded and generated data (created on first use)."""
    if os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV]).expanduser()
    elif (root := repository_root()) is not None:
        path = root / "data"
    else:
        path = Path.home() / ".cache" / "bertedu"
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir(name: str | None = None) -> Path:
    """``<data>/checkpoints`` or one named checkpoint folder inside it (not created)."""
    base = data_dir() / "checkpoints"
    return base / name if name else base


def notebooks_dir() -> Path:
    root = repository_root()
    if root is None:
        raise UserFileNotFoundError(
            "The notebooks ship with the course repository, not the installed package. "
            "Clone the course and run `make course` there."
        )
    return root / "notebooks"


def build_dir() -> Path:
    root = repository_root() or Path.cwd()
    return root / "build"

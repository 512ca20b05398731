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

from bertedu.errors import UserError, UserFileNotFoundError

DATA_DIR_ENV = "BERTEDU_DATA_DIR"
PACKAGE_DIR = Path(__file__).resolve().parent


def repository_root() -> Path | None:
    """The course checkout this package lives in, or None for an installed package."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root
    return None


def data_dir() -> Path:
    """The folder for downloaded and generated data (created on first use).

    Raises :class:`~bertedu.errors.UserError` when it cannot be created (a file is in the
    way, no permission). It need not be writable: a teacher may share a read-only folder
    that already holds the caches; writes into it report their own error.
    """
    path = configured_data_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = "a file is in the way" if isinstance(error, (FileExistsError, NotADirectoryError)) else error.strerror
        raise UserError(
            f"The data folder {path} cannot be created ({reason}). Set {DATA_DIR_ENV} to a "
            f"folder you can write to, e.g. {DATA_DIR_ENV}=~/bertedu-data."
        ) from None
    return path


def configured_data_dir() -> Path:
    """Where the data folder is meant to be (``BERTEDU_DATA_DIR``, ``data/``, ``~/.cache``); not created."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    if (root := repository_root()) is not None:
        return root / "data"
    return Path.home() / ".cache" / "bertedu"


def data_dir_problem() -> str | None:
    """Why the data folder is unusable (cannot be created, or not writable), or None."""
    try:
        path = data_dir()
    except UserError as error:
        return str(error)
    if not os.access(path, os.W_OK | os.X_OK):
        return (f"The data folder {path} is not writable: caches and checkpoints cannot be saved. "
                f"Set {DATA_DIR_ENV} to a folder you can write to.")
    return None


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

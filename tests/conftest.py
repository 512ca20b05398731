"""Shared fixtures: the real IMDb archive, offline Hugging Face, quick mode.

Data-dependent tests need the IMDb archive. Locally they skip without it; in CI (``CI`` set)
a missing archive is a failure, so they can never be skipped silently there.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = REPO.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"

# Before anything imports transformers: never reach for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("BERTEDU_QUICK", "1")
if "BERTEDU_IMDB_ARCHIVE" not in os.environ and SHARED_ARCHIVE.is_file():
    os.environ["BERTEDU_IMDB_ARCHIVE"] = str(SHARED_ARCHIVE)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in {"", "0", "false"}


@pytest.fixture(scope="session")
def imdb_archive() -> Path:
    """The real IMDb archive (``BERTEDU_IMDB_ARCHIVE``)."""
    named = os.environ.get("BERTEDU_IMDB_ARCHIVE")
    if named and Path(named).exists():
        return Path(named)
    message = ("The IMDb archive is missing: set BERTEDU_IMDB_ARCHIVE to aclImdb_v1.tar.gz "
               f"(or put it at {SHARED_ARCHIVE}).")
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)

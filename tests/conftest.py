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


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch) -> Path:
    """A 1-layer BERT folder with the embedded vocabulary, and a private data folder."""
    import torch

    from bertedu.checkpoint import default_checkpoint
    from bertedu.model import BertConfig, BertModel

    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    start = tmp_path / "tiny-start"
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)).save_pretrained(start)
    (start / "vocab.txt").write_bytes((default_checkpoint() / "vocab.txt").read_bytes())
    return start

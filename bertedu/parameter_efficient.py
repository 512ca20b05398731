"""Chapter 5b: choose what a fine-tuning run trains, and save only that.

Four methods, one switch (``PeftConfig.method``), each also training the head (the pooler and
a fresh classifier, ``HEAD_PREFIXES``):

=========  ==============================================================  ==================
method     what is trained                                                  defined in
=========  ==============================================================  ==================
full       every parameter (chapter 5)                                      --
lora       rank-r factors A, B on the query and value projections           bertedu.lora
adapter    a bottleneck adapter after W^O and W_2 in every layer + LNs      bertedu.adapters
bitfit     every bias vector                                                bertedu.adapters
=========  ==============================================================  ==================

A parameter-efficient run is saved as a small folder that names its base checkpoint::

    ch5b-lora/
        adapter_model.safetensors   # only the trained tensors (under 1 MB for LoRA r = 8 with the head)
        vocab.txt                   # the tokenizer's vocabulary
        classifier.json             # labels and truncation (as chapter 5's folders)
        peft_config.json            # method, rank, targets, base checkpoint + its fingerprint;
                                    # written last: a folder that has it is complete

``load_peft`` rebuilds the base model, checks that its weights are the ones the PEFT
weights were trained on (a SHA-256 fingerprint of its tensors), applies the method and
loads the trained tensors. Every check runs before anything is built or written.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertedu.adapters import apply_adapters, is_bias
from bertedu.checkpoint import VOCAB_NAME, save_state_dict
from bertedu.classification import (
    CLASSIFIER_NAME,
    BertForSequenceClassification,
    ClassifierInfo,
)
from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.files import atomic_write, write_json
from bertedu.lora import DEFAULT_TARGETS, apply_lora, merge_lora

METHODS = ("full", "lora", "adapter", "bitfit")
PEFT_CONFIG_NAME = "peft_config.json"
PEFT_WEIGHTS_NAME = "adapter_model.safetensors"  # peft's file name
# The head every method trains: the pooler (dense + tanh on [CLS]) and the new classifier, as
# Hu et al. train RoBERTa's classification head (dense + tanh + output) beside LoRA. This
# checkpoint's pooler was never trained for its own objective (it was trained for mean pooling;
# chapter 3), and frozen it holds LoRA back by 3 to 4.5 points on validation
# (benchmarks/peft_sweep.txt).
HEAD_PREFIXES = ("bert.pooler.", "classifier.")
DEFAULT_RANKS = {"lora": 8, "adapter": 16}  # LoRA's r, the adapter's bottleneck m
# Peak learning rates, chosen on chapter 5's 200 validation reviews by benchmarks/peft_sweep.py
# (its output: benchmarks/peft_sweep.txt); the test reviews play no part. Full fine-tuning keeps
# chapter 5's 1e-4 (2e-4 was worse); the others need far larger steps (30 to 40 times).
LEARNING_RATES = {"full": 1e-4, "lora": 4e-3, "adapter": 3e-3, "bitfit": 3e-3}


@dataclass
class PeftConfig:
    """What a parameter-efficient run trains, and on which base model.

    ``rank`` is LoRA's r, or the adapter's bottleneck size m; BitFit and full fine-tuning
    ignore it. ``alpha`` is LoRA's scale numerator (``None``: ``2 * rank``).
    ``base_checkpoint`` is ``"default"``, ``"small"`` or a folder; ``apply_method`` fills
    in ``base_fingerprint``.
    """

    method: str = "lora"
    rank: int = 8
    alpha: float | None = None
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    base_checkpoint: str = "default"
    base_fingerprint: str = ""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"Unknown fine-tuning method {self.method!r}: choose one of {', '.join(METHODS)}.")
        if self.method == "lora" and self.alpha is None:
            self.alpha = 2.0 * self.rank


def peft_settings(method: str, quick: bool | None = None) -> Any:
    """Chapter 5's ``FinetuneSettings`` with the chapter 5b budget and ``method``'s learning rate.

    Quick mode: 1,000 of chapter 5's 2,000 training reviews (label-balanced), the same 200
    validation and 1,000 test reviews, 96 tokens (head 24 + tail 70), one epoch of batches of
    16 (63 steps): the same budget for every method, so that six runs and seven evaluations
    fit the chapter's 8 minutes on 2 CPU cores (at 128 tokens the chapter took 9.7 minutes on
    an AMD EPYC). Full mode: chapter 5's budget.
    """
    from dataclasses import replace

    from bertedu.finetuning import Truncation, finetune_settings

    if method not in METHODS:
        raise UserError(f"Unknown fine-tuning method {method!r}: choose one of {', '.join(METHODS)}.")
    settings = replace(finetune_settings(quick), cpu_bf16=False)  # chapter 5b's tables were measured in float32
    if settings.n_train <= 2_000:  # quick mode
        settings = replace(settings, n_train=1_000, truncation=Truncation(96, 24), epochs=1)
    return replace(settings, learning_rate=LEARNING_RATES[method] if method != "full" else settings.learning_rate)


def fingerprint(module: nn.Module) -> str:
    """SHA-256 of every tensor's name, shape and values: the same weights give the same string."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def apply_method(model: BertForSequenceClassification, config: PeftConfig) -> BertForSequenceClassification:
    """Change ``model`` in place so that only ``config.method``'s parameters train.

    Records the fingerprint of the untouched encoder in ``config.base_fingerprint``.
    Errors (a bad rank, a target that matches nothing) are raised before the model changes.
    """
    config.base_fingerprint = fingerprint(model.bert)
    return _apply(model, config)


def method_config(method: str, rank: int | None, checkpoint_name: str, checkpoint: str | os.PathLike) -> PeftConfig:
    """The ``PeftConfig`` for ``bertedu finetune --method M --rank R``, checked before any work.

    ``checkpoint_name`` is what the user gave (``default``, ``small`` or a folder, stored as an
    absolute path); the method is tried on an empty (meta-device) model of ``checkpoint``'s
    shape, so a bad rank or target fails in a second, before data is loaded or files written.
    """
    from bertedu.model import BertConfig

    name = checkpoint_name if checkpoint_name in ("default", "small") else str(Path(checkpoint).resolve())
    config = PeftConfig(method, DEFAULT_RANKS.get(method, 8) if rank is None else rank, base_checkpoint=name)
    count_for_method(BertConfig.from_pretrained(checkpoint), config)
    return config


def count_for_method(bert_config: Any, config: PeftConfig, num_labels: int = 2) -> tuple[int, int]:
    """``(trainable, total)`` for a classifier of this shape under ``config``, built on the meta
    device (no memory, no weights): a bad rank or target raises here."""
    with torch.device("meta"):
        model = _apply(BertForSequenceClassification(bert_config, num_labels=num_labels), config)
    return count_parameters(model)


def _apply(model: BertForSequenceClassification, config: PeftConfig) -> BertForSequenceClassification:
    if config.method == "lora":
        apply_lora(model.bert, config.rank, config.alpha, config.dropout, config.target_modules)
        trainable = lambda name: ".lora_" in name  # noqa: E731
    elif config.method == "adapter":
        apply_adapters(model.bert, config.rank)
        trainable = lambda name: ".adapter." in name or ".LayerNorm." in name  # noqa: E731
    elif config.method == "bitfit":
        trainable = is_bias
    else:
        trainable = lambda name: True  # noqa: E731
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(HEAD_PREFIXES) or trainable(name))
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (total includes what a method added)."""
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


def trainable_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the trained tensors, by name: what a PEFT folder stores."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def save_peft(model: BertForSequenceClassification, folder: str | os.PathLike, config: PeftConfig,
              vocab_file: str | os.PathLike, info: ClassifierInfo) -> Path:
    """Write the trained tensors, the vocabulary, ``classifier.json`` and (last) ``peft_config.json``."""
    if config.method == "full":
        raise UserError("Full fine-tuning trains every weight: save it with bertedu.classification.save_classifier.")
    if not config.base_fingerprint:
        raise UserError("This PeftConfig has no base fingerprint: call apply_method(model, config) before training.")
    folder = Path(folder)
    save_state_dict(trainable_state_dict(model), folder / PEFT_WEIGHTS_NAME)
    if Path(vocab_file).resolve() != (folder / VOCAB_NAME).resolve():
        atomic_write(folder / VOCAB_NAME, lambda tmp: shutil.copyfile(vocab_file, tmp))
    write_json(folder / CLASSIFIER_NAME, asdict(info) | {"base_checkpoint": config.base_checkpoint})
    write_json(folder / PEFT_CONFIG_NAME, asdict(config))
    return folder


def is_peft_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder).expanduser() / PEFT_CONFIG_NAME).is_file()


def read_peft_config(folder: str | os.PathLike) -> PeftConfig:
    folder = Path(folder).expanduser()
    path = folder / PEFT_CONFIG_NAME
    if not path.is_file():
        raise UserFileNotFoundError(f"{folder} is not a PEFT folder: it has no {PEFT_CONFIG_NAME}.")
    try:
        return PeftConfig(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as error:
        raise UserError(f"{path} is not a valid PEFT config ({error}): save the folder again with save_peft.") from None


def resolve_base(name: str, folder: Path) -> Path:
    """The base checkpoint folder a PEFT folder names, or a ``UserError`` saying it is missing."""
    from bertedu.finetuning import resolve_checkpoint

    try:
        base = resolve_checkpoint(name)
    except FileNotFoundError as error:
        raise UserFileNotFoundError(f"{folder} was trained on base checkpoint {name!r}, which is missing: "
                                    f"{str(error).splitlines()[0]}") from None
    if not base.is_dir():
        raise UserFileNotFoundError(f"{folder} was trained on base checkpoint {base}, which is missing: restore "
                                    f"that folder, or pass its new place as base_checkpoint=...")
    return base


def load_peft(folder: str | os.PathLike, base_checkpoint: str | os.PathLike | None = None,
              merge: bool = False) -> tuple[BertForSequenceClassification, ClassifierInfo]:
    """Rebuild a model saved by ``save_peft``: base checkpoint + method + trained tensors.

    ``base_checkpoint`` overrides the folder the config names (e.g. after moving it); its
    weights must still be the ones trained on. ``merge=True`` folds LoRA into the weights
    (faster inference). Returns the model in eval mode and the ``ClassifierInfo``.
    """
    from safetensors.torch import load_file

    folder = Path(folder).expanduser()
    config = read_peft_config(folder)
    weights_path = folder / PEFT_WEIGHTS_NAME
    if not weights_path.is_file() or not (folder / VOCAB_NAME).is_file():
        raise UserFileNotFoundError(f"{folder} lacks {PEFT_WEIGHTS_NAME} or {VOCAB_NAME}: save it again with save_peft.")
    base = resolve_base(str(base_checkpoint or config.base_checkpoint), folder)
    info_data = json.loads((folder / CLASSIFIER_NAME).read_text(encoding="utf-8"))
    info = ClassifierInfo(**info_data)
    model = BertForSequenceClassification.from_pretrained(base, num_labels=len(info.labels))
    if fingerprint(model.bert) != config.base_fingerprint:
        raise UserError(f"The PEFT weights in {folder} were trained on another base model than {base} "
                        f"(the base weights' fingerprint differs): load them onto the checkpoint they were "
                        f"trained from ({config.base_checkpoint}).")
    apply_method(model, replace_fingerprint(config))
    load_trainable(model, load_file(weights_path, device="cpu"), folder)
    if merge:
        merge_lora(model)
    return model.eval(), info


def replace_fingerprint(config: PeftConfig) -> PeftConfig:
    """A copy, so that ``apply_method`` does not overwrite the stored fingerprint."""
    return PeftConfig(**asdict(config))


def load_trainable(model: nn.Module, state: dict[str, torch.Tensor], source: Any) -> None:
    """Copy the saved tensors into ``model``'s trainable parameters; names and shapes must match."""
    expected = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [name for name in expected.keys() & state.keys() if expected[name].shape != state[name].shape]
    if missing or unexpected or wrong:
        raise UserError(f"The weights in {source} do not fit this model ({len(missing)} missing, "
                        f"{len(unexpected)} unexpected, {len(wrong)} of another shape; e.g. "
                        f"{(missing + unexpected + wrong)[:2]}): save the folder again with save_peft.")
    with torch.no_grad():
        for name, parameter in expected.items():
            parameter.copy_(state[name])


__all__ = [
    "METHODS",
    "PEFT_CONFIG_NAME",
    "PEFT_WEIGHTS_NAME",
    "PeftConfig",
    "peft_settings",
    "apply_method",
    "count_for_method",
    "count_parameters",
    "fingerprint",
    "is_peft_folder",
    "method_config",
    "load_peft",
    "read_peft_config",
    "save_peft",
    "trainable_state_dict",
]

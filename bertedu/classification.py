"""Chapter 5's model: BERT with a classification head, how to save it, and how to score it.

    input_ids (B, T) ──> BertModel ──> pooler_output (B, H) ──> dropout ──> Linear(H, C) ──> logits (B, C)
    loss = cross-entropy(logits, labels)        # labels (B,), one class per *review*

One label per sequence, read from the pooled ``[CLS]`` vector ``tanh(W h_[CLS] + b)``, as
BERT's paper does. In the original BERT the pooler was trained by next-sentence prediction;
all-MiniLM-L6-v2 was trained afterwards as a sentence encoder with *mean* pooling, so its
frozen ``[CLS]`` vector is a weaker summary than the mean (chapter 5 measures both).
Fine-tuning trains the pooler together with the head, which is why reading ``[CLS]`` works.

A fine-tuned classifier is saved as a Hugging Face folder that also records how it reads
text::

    ch5-sentiment/
        config.json          # BertConfig + "architectures": ["BertForSequenceClassification"],
                             # id2label / label2id (transformers reads these too)
        model.safetensors    # bert.* encoder weights + classifier.weight / classifier.bias
        vocab.txt            # the tokenizer's vocabulary
        classifier.json      # the marker: labels and the truncation used in training

Scores are in ``bertedu.metrics``; the confusion-matrix picture in ``bertedu.viz``.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertedu.checkpoint import (
    CONFIG_NAME,
    SAFETENSORS_NAME,
    VOCAB_NAME,
    checkpoint_folder,
    read_config_dict,
    read_json_object,
    read_state_dict,
    save_state_dict,
)
from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.files import atomic_write, write_json
from bertedu.metrics import SENTIMENT_LABELS
from bertedu.model import BertConfig, BertModel, encoder_weights, init_bert_weights
from bertedu.settings import value_checks_enabled

CLASSIFIER_NAME = "classifier.json"

# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


@dataclass
class SequenceClassifierOutput:
    """What ``BertForSequenceClassification`` returns (the names ``transformers`` uses).

    loss: the mean cross-entropy over the batch when labels were given, else None.
    logits: ``(B, C)`` unnormalised class scores; ``softmax`` gives probabilities.
    attentions: ``L`` tensors ``(B, nh, T, T)`` when ``output_attentions=True``, else None.
    """

    loss: Tensor | None
    logits: Tensor
    attentions: tuple[Tensor, ...] | None = None


class BertForSequenceClassification(nn.Module):
    """BERT + dropout + one linear layer on the pooled ``[CLS]`` vector.

    >>> model = BertForSequenceClassification.from_pretrained(default_checkpoint(), num_labels=2)
    >>> out = model(input_ids, attention_mask=attention_mask, labels=labels)
    >>> out.loss, out.logits.shape          # scalar, (B, 2)
    """

    def __init__(self, config: BertConfig, num_labels: int = 2, classifier_dropout: float | None = None) -> None:
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2 (got {num_labels}): a classifier chooses between classes.")
        self.config = config
        self.num_labels = num_labels
        self.bert = BertModel(config)
        # The same dropout rate as inside BERT unless asked otherwise (as transformers does).
        self.dropout = nn.Dropout(config.hidden_dropout_prob if classifier_dropout is None else classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        init_bert_weights(self.classifier, config.initializer_range)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
    ) -> SequenceClassifierOutput:
        """
        Args:
            input_ids, attention_mask, token_type_ids: ``(B, T)``, as for ``BertModel``.
            labels: ``(B,)`` class ids in ``[0, num_labels)``; give them to get ``.loss``.
            output_attentions: also return every layer's attention probabilities.
        """
        out = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        output_attentions=output_attentions)
        logits = self.classifier(self.dropout(out.pooler_output))  # (B, C)
        loss = None
        if labels is not None:
            check_labels(labels, logits.size(0), self.num_labels)
            # float(): under bf16 autocast the logits are bf16; the loss is computed in fp32.
            loss = F.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss, logits, out.attentions)

    # -- checkpoints -----------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, num_labels: int | None = None, classifier_dropout: float | None = None
    ) -> BertForSequenceClassification:
        """Any BERT checkpoint folder: an encoder (``BertModel``), a pre-training model
        (``bert.*`` + ``cls.*``) or a saved classifier (``bert.*`` + ``classifier.*``).

        The head's weights are loaded when the folder has them (and ``num_labels`` matches,
        or is None); otherwise the head starts fresh. Returns the model in eval mode.
        """
        folder = checkpoint_folder(path)
        state = read_state_dict(folder)
        head = {key: value for key, value in state.items() if key.startswith("classifier.")}
        saved_labels = int(head["classifier.weight"].shape[0]) if head else None
        model = cls(BertConfig.from_pretrained(folder), num_labels or saved_labels or 2, classifier_dropout)
        model.bert.load_state_dict(encoder_weights(state, model.bert, source=folder))
        if head and saved_labels == model.num_labels:
            model.classifier.load_state_dict({key.removeprefix("classifier."): value for key, value in head.items()})
        return model.eval()

    def save_pretrained(self, path: str | os.PathLike, label_names: Sequence[str] | None = None) -> Path:
        """Write config.json (with the labels) and model.safetensors, each atomically.

        The key names are those of ``transformers``' ``BertForSequenceClassification``, so
        the folder loads there too. ``save_classifier`` adds the vocabulary and the marker.
        """
        folder = Path(path)
        names = list(label_names or default_label_names(self.num_labels))
        if len(names) != self.num_labels:
            raise ValueError(f"{len(names)} label names for {self.num_labels} classes: give one name per class.")
        config = {
            **self.config.to_dict(),
            "architectures": ["BertForSequenceClassification"],
            "id2label": {str(i): name for i, name in enumerate(names)},
            "label2id": {name: i for i, name in enumerate(names)},
        }
        write_json(folder / CONFIG_NAME, config)
        save_state_dict(self.state_dict(), folder / SAFETENSORS_NAME)
        return folder


def check_labels(labels: Tensor, batch_size: int, num_labels: int) -> None:
    """Raise a ValueError naming the problem unless ``labels`` is ``(B,)`` class ids in ``[0, C)``.

    Cross-entropy would raise an IndexError ("Target 2 is out of bounds") on the CPU and a
    device-side assertion that stops the process on a GPU.
    """
    if not isinstance(labels, Tensor):
        raise ValueError(f"labels must be a tensor of class ids; got {type(labels).__name__}.")
    if labels.shape != (batch_size,):
        raise ValueError(f"labels must have shape ({batch_size},), one class per sequence; got {tuple(labels.shape)}.")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must hold integer class ids; got dtype {labels.dtype}. Convert with labels.long().")
    if not value_checks_enabled(labels):  # no host-device synchronisation in the GPU hot path
        return
    bad = (labels < 0) | (labels >= num_labels)
    if bool(bad.any()):
        index = int(bad.nonzero()[0, 0])
        raise ValueError(f"labels[{index}] = {int(labels[index])} is outside [0, {num_labels - 1}]: the head has "
                         f"{num_labels} classes ({int(bad.sum())} label(s) out of range in all).")


def default_label_names(num_labels: int) -> tuple[str, ...]:
    return SENTIMENT_LABELS if num_labels == 2 else tuple(f"LABEL_{i}" for i in range(num_labels))


# ---------------------------------------------------------------------------------------
# A classifier folder: model + vocabulary + how it reads text
# ---------------------------------------------------------------------------------------


@dataclass
class ClassifierInfo:
    """The contents of ``classifier.json``: what ``bertedu predict`` needs besides weights.

    ``max_length`` and ``head_tokens`` describe the truncation used in training
    (``[CLS]`` + the first ``head_tokens`` + the last ``max_length - 2 - head_tokens``
    tokens + ``[SEP]``); prediction must read text the same way.
    """

    labels: list[str] = field(default_factory=lambda: list(SENTIMENT_LABELS))
    max_length: int = 256
    head_tokens: int = 64
    base_checkpoint: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    task: str = "sequence-classification"
    # SHA-256 of the vocabulary's tokens in order (``vocab_fingerprint``), set by
    # ``save_classifier``: a vocab.txt reordered later is refused. "" = not recorded.
    vocab_sha256: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.labels, tuple):
            self.labels = list(self.labels)
        problem = classifier_info_problem(self)
        if problem:
            raise UserError(problem)

    @classmethod
    def from_json_file(cls, path: Path) -> ClassifierInfo:
        """Read classifier.json; wrong keys, types or values are a ``UserError`` naming the file."""
        data = read_json_object(path)
        known = {f.name for f in fields(cls)}
        unknown = sorted(data.keys() - known)
        if unknown:
            raise UserError(f"{path} has unknown key(s) {unknown}; a {CLASSIFIER_NAME} holds {sorted(known)}. "
                            f"Fix the key names, or save the classifier again.")
        try:
            return cls(**data)
        except UserError as error:
            raise UserError(f"{path}: {error}") from None


def classifier_info_problem(info: ClassifierInfo) -> str | None:
    """What is wrong with the fields of ``info`` (as read from classifier.json), or None."""
    labels = info.labels
    if not isinstance(labels, list) or not all(isinstance(name, str) and name for name in labels):
        return f"labels must be a list of label names (strings); got {json.dumps(labels)}."
    if len(labels) < 2 or len(set(labels)) != len(labels):
        return f"labels must name at least 2 different classes; got {json.dumps(labels)}."
    for name in ("max_length", "head_tokens"):
        value = getattr(info, name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be a whole number; got {json.dumps(value)}."
    if info.max_length < 3:
        return f"max_length={info.max_length}: need room for [CLS], [SEP] and one token."
    if not 0 <= info.head_tokens <= info.max_length - 2:
        return f"head_tokens={info.head_tokens} must lie in [0, max_length - 2 = {info.max_length - 2}]."
    for name in ("base_checkpoint", "task", "vocab_sha256"):
        if not isinstance(getattr(info, name), str):
            return f"{name} must be a string; got {json.dumps(getattr(info, name))}."
    if info.task != "sequence-classification":
        return f"task={info.task!r}: bertedu predicts only 'sequence-classification'."
    metrics = info.metrics
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        return f"metrics must be an object of numbers; got {json.dumps(metrics)}."
    return None


def save_classifier(model: BertForSequenceClassification, folder: str | os.PathLike, vocab_file: str | os.PathLike,
                    info: ClassifierInfo) -> Path:
    """Save a fine-tuned classifier: weights, config, vocab.txt and the ``classifier.json`` marker.

    The marker records the vocabulary's fingerprint and is written last, so a folder that
    has it is complete.
    """
    from bertedu.tokenization import read_vocab_tokens, vocab_fingerprint

    folder = Path(folder)
    info = replace(info, vocab_sha256=vocab_fingerprint(read_vocab_tokens(vocab_file)))
    model.save_pretrained(folder, info.labels)
    if Path(vocab_file).resolve() != (folder / VOCAB_NAME).resolve():
        atomic_write(folder / VOCAB_NAME, lambda tmp: shutil.copyfile(vocab_file, tmp))
    write_json(folder / CLASSIFIER_NAME, asdict(info))
    return folder


def load_classifier(folder: str | os.PathLike) -> tuple[BertForSequenceClassification, ClassifierInfo]:
    """Load a folder written by ``save_classifier`` (or a transformers classifier folder).

    Raises FileNotFoundError / ValueError with what to do when the folder is missing, is
    not a checkpoint, holds an encoder without a classification head, has a damaged
    config.json / classifier.json / weights file, or a vocab.txt other than the one saved.
    """
    # Chapter 5b: a folder that holds only the trained weights (LoRA, adapters, BitFit).
    from bertedu.parameter_efficient import is_peft_folder, load_peft

    if is_peft_folder(folder):
        return load_peft(folder, merge=True)

    from bertedu.tokenization import (
        check_vocab_size,
        read_vocab_tokens,
        vocab_fingerprint,
    )

    folder = checkpoint_folder(folder)
    config = read_config_dict(folder)
    state = read_state_dict(folder)
    if not any(key.startswith("classifier.") for key in state):
        architectures = config.get("architectures")
        kind = architectures[0] if isinstance(architectures, list) and architectures else "a BERT encoder"
        raise UserError(
            f"{folder} holds {kind} without a classification head (no classifier.* "
            f"weights), so it cannot label text yet. Fine-tune it first: "
            f"`bertedu finetune --checkpoint {folder} --output DIR`, then pass --model DIR."
        )
    if not (folder / VOCAB_NAME).is_file():
        raise UserFileNotFoundError(f"{folder} has no {VOCAB_NAME}: copy the vocabulary the model was trained with there.")
    if (folder / CLASSIFIER_NAME).is_file():
        info = ClassifierInfo.from_json_file(folder / CLASSIFIER_NAME)
    else:  # a transformers classifier: take the labels from its config
        info = ClassifierInfo(labels=labels_from_config(config, folder / CONFIG_NAME))
    tokens = read_vocab_tokens(folder)
    vocab_size = BertConfig.from_dict(config, source=folder / CONFIG_NAME).vocab_size
    check_vocab_size(len(tokens), folder / VOCAB_NAME, vocab_size, folder / CONFIG_NAME)
    if info.vocab_sha256 and vocab_fingerprint(tokens) != info.vocab_sha256:
        raise UserError(
            f"{folder / VOCAB_NAME} is not the vocabulary this classifier was saved with: its tokens or their "
            f"order changed (the fingerprint in {CLASSIFIER_NAME} differs), so every id would mean another "
            f"word. Restore the original vocab.txt."
        )
    model = BertForSequenceClassification.from_pretrained(folder)
    if len(info.labels) != model.num_labels:
        raise UserError(f"{folder}: {len(info.labels)} label names but the head has {model.num_labels} outputs.")
    return model, info


def labels_from_config(config: dict, source: Path) -> list[str]:
    """The label names in a transformers config's ``id2label`` ({"0": "neg", ...}), or the defaults."""
    id2label = config.get("id2label")
    if not id2label:
        return list(SENTIMENT_LABELS)
    if not isinstance(id2label, dict) or set(id2label) != {str(i) for i in range(len(id2label))} or not all(
            isinstance(name, str) for name in id2label.values()):
        raise UserError(f"{source}: id2label must map \"0\", \"1\", ... to label names; "
                        f"got {json.dumps(id2label)[:120]}.")
    return [id2label[str(i)] for i in range(len(id2label))]


__all__ = [
    "BertForSequenceClassification",
    "ClassifierInfo",
    "SequenceClassifierOutput",
    "load_classifier",
    "save_classifier",
]

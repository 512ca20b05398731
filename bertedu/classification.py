"""Chapter 5's model: BERT with a classification head, how to save it, and how to score it.

    input_ids (B, T) ──> BertModel ──> pooler_output (B, H) ──> dropout ──> Linear(H, C) ──> logits (B, C)
    loss = cross-entropy(logits, labels)        # labels (B,), one class per *review*

One label per sequence, read from the pooled ``[CLS]`` vector: the pooler
``tanh(W h_[CLS] + b)`` was trained in pre-training (next-sentence prediction) to sum up
a whole input, so a single linear layer on top of it is all a classifier needs.

A fine-tuned classifier is saved as a Hugging Face folder that also records how it reads
text::

    ch5-sentiment/
        config.json          # BertConfig + "architectures": ["BertForSequenceClassification"],
                             # id2label / label2id (transformers reads these too)
        model.safetensors    # bert.* encoder weights + classifier.weight / classifier.bias
        vocab.txt            # the tokenizer's vocabulary
        classifier.json      # the marker: labels and the truncation used in training

Scoring: ``classification_scores`` (accuracy; precision, recall and F1 per class and
macro-averaged), ``confusion_matrix`` and ``plot_confusion_matrix``.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from bertedu.checkpoint import (
    CONFIG_NAME,
    SAFETENSORS_NAME,
    VOCAB_NAME,
    checkpoint_folder,
    read_config_dict,
    read_state_dict,
    save_state_dict,
)
from bertedu.files import atomic_write, write_json
from bertedu.model import BertConfig, BertModel, encoder_weights, init_bert_weights

CLASSIFIER_NAME = "classifier.json"
SENTIMENT_LABELS = ("negative", "positive")  # IMDb: label 0 and label 1

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
            if labels.shape != logits.shape[:1]:
                raise ValueError(f"labels must have shape ({logits.size(0)},), one class per sequence; "
                                 f"got {tuple(labels.shape)}.")
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


def save_classifier(model: BertForSequenceClassification, folder: str | os.PathLike, vocab_file: str | os.PathLike,
                    info: ClassifierInfo) -> Path:
    """Save a fine-tuned classifier: weights, config, vocab.txt and the ``classifier.json`` marker.

    The marker is written last, so a folder that has it is complete.
    """
    folder = Path(folder)
    model.save_pretrained(folder, info.labels)
    if Path(vocab_file).resolve() != (folder / VOCAB_NAME).resolve():
        atomic_write(folder / VOCAB_NAME, lambda tmp: shutil.copyfile(vocab_file, tmp))
    write_json(folder / CLASSIFIER_NAME, asdict(info))
    return folder


def load_classifier(folder: str | os.PathLike) -> tuple[BertForSequenceClassification, ClassifierInfo]:
    """Load a folder written by ``save_classifier`` (or a transformers classifier folder).

    Raises FileNotFoundError / ValueError with what to do when the folder is missing, is
    not a checkpoint, or holds an encoder without a classification head.
    """
    # Chapter 5b: a folder that holds only the trained weights (LoRA, adapters, BitFit).
    from bertedu.parameter_efficient import is_peft_folder, load_peft

    if is_peft_folder(folder):
        return load_peft(folder, merge=True)
    folder = checkpoint_folder(folder)
    has_head = any(key.startswith("classifier.") for key in read_state_dict(folder))
    if not has_head:
        architectures = read_config_dict(folder).get("architectures") or ["a BERT encoder"]
        raise ValueError(
            f"{folder} holds {architectures[0]} without a classification head (no classifier.* "
            f"weights), so it cannot label text yet. Fine-tune it first: "
            f"`bertedu finetune --checkpoint {folder} --output DIR`, then pass --model DIR."
        )
    if not (folder / VOCAB_NAME).is_file():
        raise FileNotFoundError(f"{folder} has no {VOCAB_NAME}: copy the vocabulary the model was trained with there.")
    info = ClassifierInfo()
    if (folder / CLASSIFIER_NAME).is_file():
        info = ClassifierInfo(**json.loads((folder / CLASSIFIER_NAME).read_text(encoding="utf-8")))
    else:  # a transformers classifier: take the labels from its config
        id2label = read_config_dict(folder).get("id2label")
        if id2label:
            info.labels = [id2label[str(i)] for i in range(len(id2label))]
    model = BertForSequenceClassification.from_pretrained(folder)
    if len(info.labels) != model.num_labels:
        raise ValueError(f"{folder}: {len(info.labels)} label names but the head has {model.num_labels} outputs.")
    return model, info


# ---------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------


def confusion_matrix(labels: Sequence[int], predictions: Sequence[int], num_labels: int = 2) -> np.ndarray:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions.")
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


@dataclass
class Scores:
    """Accuracy, and precision / recall / F1 for each class and their macro average.

    For class c:  precision = TP / (TP + FP)  (of the reviews called c, how many are c)
                  recall    = TP / (TP + FN)  (of the reviews that are c, how many were found)
                  F1        = 2 P R / (P + R)
    The macro average weighs every class equally, whatever its size.
    """

    accuracy: float
    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    matrix: np.ndarray
    label_names: tuple[str, ...]

    @property
    def macro_precision(self) -> float:
        return float(np.mean(list(self.precision.values())))

    @property
    def macro_recall(self) -> float:
        return float(np.mean(list(self.recall.values())))

    @property
    def macro_f1(self) -> float:
        return float(np.mean(list(self.f1.values())))

    def row(self) -> dict[str, float]:
        """Flat numbers for a comparison table."""
        row = {"accuracy": self.accuracy}
        for name in self.label_names:
            row |= {f"precision_{name}": self.precision[name], f"recall_{name}": self.recall[name],
                    f"f1_{name}": self.f1[name]}
        return row | {"macro_precision": self.macro_precision, "macro_recall": self.macro_recall,
                      "macro_f1": self.macro_f1}

    def report(self) -> str:
        """A small text table, as scikit-learn's ``classification_report`` prints."""
        width = max(len(name) for name in (*self.label_names, "macro avg"))
        lines = [f"{'':>{width}}  precision  recall  f1-score  support"]
        support = self.matrix.sum(axis=1)
        for i, name in enumerate(self.label_names):
            lines.append(f"{name:>{width}}  {self.precision[name]:9.3f}  {self.recall[name]:6.3f}  "
                         f"{self.f1[name]:8.3f}  {support[i]:7d}")
        lines.append(f"{'macro avg':>{width}}  {self.macro_precision:9.3f}  {self.macro_recall:6.3f}  "
                     f"{self.macro_f1:8.3f}  {support.sum():7d}")
        lines.append(f"{'accuracy':>{width}}  {'':9}  {'':6}  {self.accuracy:8.3f}  {support.sum():7d}")
        return "\n".join(lines)


def classification_scores(labels: Sequence[int], predictions: Sequence[int],
                          label_names: Sequence[str] = SENTIMENT_LABELS) -> Scores:
    """Every score of the chapter's table, from the confusion matrix.

    A class that is never predicted gets precision 0 (not NaN), as scikit-learn's
    ``zero_division=0`` does.
    """
    matrix = confusion_matrix(labels, predictions, len(label_names))
    true_positive = np.diag(matrix).astype(float)  # (C,)
    predicted = matrix.sum(axis=0)  # (C,) column sums: how often each class was predicted
    actual = matrix.sum(axis=1)  # (C,) row sums: how often each class occurs
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros_like(true_positive), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    names = tuple(label_names)
    return Scores(
        accuracy=float(true_positive.sum() / max(1, matrix.sum())),
        precision=dict(zip(names, precision.tolist())),
        recall=dict(zip(names, recall.tolist())),
        f1=dict(zip(names, f1.tolist())),
        matrix=matrix,
        label_names=names,
    )


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str] = SENTIMENT_LABELS,
                          ax: Any = None, title: str | None = None) -> Any:
    """Counts and row percentages (the share of each true class) in a heatmap."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(3.6, 3.2))[1]
    shares = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, f"{count}\n{shares[i, j]:.1%}", ha="center", va="center",
                color="white" if shares[i, j] > 0.6 else "black", fontsize=9)
    ticks = range(len(label_names))
    ax.set_xticks(ticks, label_names)
    ax.set_yticks(ticks, label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


__all__ = [
    "BertForSequenceClassification",
    "ClassifierInfo",
    "Scores",
    "SequenceClassifierOutput",
    "classification_scores",
    "confusion_matrix",
    "load_classifier",
    "plot_confusion_matrix",
    "save_classifier",
]

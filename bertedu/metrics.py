"""Scores for a classifier, and the error analysis of chapter 5.

- ``classification_scores``: accuracy, precision / recall / F1 per class and their macro
  average, from a confusion matrix (checked against scikit-learn in the tests).
- ``most_confident_errors``, ``accuracy_by_length``: where a model goes wrong.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SENTIMENT_LABELS = ("negative", "positive")  # class 0, class 1 (IMDb's neg / pos)




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




def most_confident_errors(probabilities: np.ndarray, labels: Sequence[int], k: int = 5) -> list[int]:
    """Indices of the ``k`` wrong predictions made with the highest confidence."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != np.asarray(labels))
    return wrong[np.argsort(-probabilities[wrong].max(axis=1), kind="stable")][:k].tolist()


def accuracy_by_length(lengths: Sequence[int], correct: Sequence[bool], edges: Sequence[int]) -> list[dict[str, Any]]:
    """Accuracy in length bins ``[edges[i], edges[i+1])``; the last bin is open-ended."""
    lengths, correct = np.asarray(lengths), np.asarray(correct, dtype=float)
    rows = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else math.inf
        selected = (lengths >= low) & (lengths < high)
        if selected.any():
            label = f"{low}-{high - 1}" if high != math.inf else f"{low}+"
            rows.append({"bin": label, "n": int(selected.sum()), "accuracy": float(correct[selected].mean())})
    return rows

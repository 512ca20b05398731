"""Chapter 5's yardsticks: classifiers that learn only a linear layer.

1. **TF-IDF + logistic regression**: a review becomes a sparse vector of word and
   word-pair counts, re-weighted by how rare each term is
   (``tfidf(t, d) = (1 + log tf(t, d)) * idf(t)``), and a logistic regression learns one
   weight per term. No notion of word order beyond pairs, no pre-training, seconds to fit:
   the bar any neural model has to clear.
2. **A linear probe**: the same logistic regression on *frozen* BERT features (one
   vector per review, from a model that is not trained further). It measures how much
   sentiment the pre-trained features already hold before fine-tuning changes them.

Both choose their regularisation strength ``C`` on the validation set, as fine-tuning
chooses its best epoch there; the test set is touched once, at the end.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

DEFAULT_CS = (0.25, 1.0, 4.0, 16.0)  # inverse regularisation strengths to try


@dataclass
class FittedBaseline:
    """A fitted scikit-learn pipeline, the ``C`` it chose and the validation accuracy per ``C``."""

    pipeline: Pipeline
    C: float
    validation_accuracy: dict[float, float]

    def predict_proba(self, inputs: Any) -> np.ndarray:
        """``(N, 2)`` class probabilities for N texts (TF-IDF) or an ``(N, H)`` feature array."""
        return self.pipeline.predict_proba(inputs)

    def predict(self, inputs: Any) -> np.ndarray:
        return self.predict_proba(inputs).argmax(axis=1)


def select_C(make: Any, train_inputs: Any, train_labels: Sequence[int], validation_inputs: Any,
             validation_labels: Sequence[int], Cs: Sequence[float] = DEFAULT_CS) -> FittedBaseline:
    """Fit ``make(C)`` for each ``C``; keep the one with the best validation accuracy.

    Ties go to the smaller ``C`` (the simpler, more regularised model).
    """
    best: FittedBaseline | None = None
    accuracies: dict[float, float] = {}
    for C in Cs:
        pipeline = make(C).fit(train_inputs, np.asarray(train_labels))
        accuracies[C] = float((pipeline.predict(validation_inputs) == np.asarray(validation_labels)).mean())
        if best is None or accuracies[C] > accuracies[best.C]:
            best = FittedBaseline(pipeline, C, accuracies)
    assert best is not None, "Cs must not be empty"
    return best


def tfidf_logistic_regression(C: float = 4.0) -> Pipeline:
    """An unfitted TF-IDF (words and word pairs) + logistic regression pipeline.

    ``sublinear_tf``: the 10th "great" in a review adds less than the 1st;
    ``min_df=2``: a term seen in one training review only is noise, not a feature.
    """
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, strip_accents="unicode"),
        LogisticRegression(C=C, max_iter=2_000),
    )


def fit_tfidf_baseline(train_texts: Sequence[str], train_labels: Sequence[int], validation_texts: Sequence[str],
                       validation_labels: Sequence[int], Cs: Sequence[float] = DEFAULT_CS) -> FittedBaseline:
    """Row 1 of the chapter's table: TF-IDF + logistic regression, ``C`` chosen on validation."""
    return select_C(tfidf_logistic_regression, list(train_texts), train_labels, list(validation_texts),
                    validation_labels, Cs)


def linear_probe(C: float = 1.0) -> Pipeline:
    """An unfitted logistic regression on standardised features: a linear head.

    Standardising puts every feature on the same scale, so one ``C`` suits all of them.
    """
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2_000))


def fit_linear_probe(train_features: np.ndarray, train_labels: Sequence[int], validation_features: np.ndarray,
                     validation_labels: Sequence[int], Cs: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0)
                     ) -> FittedBaseline:
    """Row 4 of the chapter's table: a linear head on frozen ``(N, H)`` BERT features."""
    return select_C(linear_probe, np.asarray(train_features), train_labels, np.asarray(validation_features),
                    validation_labels, Cs)


__all__ = ["FittedBaseline", "fit_linear_probe", "fit_tfidf_baseline", "linear_probe", "select_C",
           "tfidf_logistic_regression"]

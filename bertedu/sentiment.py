"""Chapter 5: a fine-tuned sentiment classifier in use: text in, verdict out.

``SentimentClassifier`` bundles a fine-tuned ``BertForSequenceClassification`` with its
tokenizer and the truncation it was trained with, so a text of any length is read exactly
as in training (``[CLS]`` + head + tail + ``[SEP]``)::

    classifier = SentimentClassifier.from_pretrained("data/checkpoints/ch5-sentiment")
    classifier.predict(["A quiet, moving film."])   # label, probability, tokens, truncated?
    classifier.explain("Not bad at all!").html()     # the attention from [CLS] per word

``explain`` reads the attention of ``[CLS]``: a hint of where the model looks, not a proof
of why it decides (chapter 6 measures the difference).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bertedu.classification import (
    BertForSequenceClassification,
    ClassifierInfo,
    load_classifier,
    save_classifier,
)
from bertedu.finetuning import (
    Example,
    Truncation,
    check_texts,
    predict_proba,
    truncate_head_tail,
    word_pieces,
)
from bertedu.settings import model_device, select_device
from bertedu.viz import attention_html


@dataclass
class Prediction:
    """The verdict on one text. ``n_tokens`` counts its word pieces before truncation."""

    label: str
    probability: float  # of ``label``
    probabilities: dict[str, float]
    n_tokens: int
    truncated: bool


@dataclass
class Explanation:
    """One text's prediction and the attention ``[CLS]`` pays to each of its words."""

    prediction: Prediction
    words: list[str]
    weights: list[float]  # sums to 1 over the words

    def html(self) -> str:
        return attention_html(self.words, self.weights, self.prediction)


class SentimentClassifier:
    """A fine-tuned model with its tokenizer and truncation: text in, verdict out.

    >>> classifier = SentimentClassifier.from_pretrained(checkpoints_dir("ch5-sentiment"))
    >>> classifier.predict(["A wonderful film."])[0].label
    'positive'
    """

    def __init__(self, model: BertForSequenceClassification, vocab_file: str | Path, info: ClassifierInfo) -> None:
        from bertedu.tokenization import load_fast_tokenizer

        self.model = model.eval()
        self.vocab_file = Path(vocab_file)
        # Checked against the model's config: size, [PAD] at pad_token_id, the special tokens.
        self.tokenizer = load_fast_tokenizer(vocab_file, config=model.config)
        self.info = info
        self.truncation = Truncation(info.max_length, info.head_tokens)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: torch.device | None = None) -> SentimentClassifier:
        """Load a folder saved by ``save_pretrained`` (errors say what to do when it is not one)."""
        from bertedu.tokenization import find_vocab

        model, info = load_classifier(folder)
        return cls(model.to(device or select_device()), find_vocab(folder), info)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Weights, config, vocab.txt and the classifier.json marker (see bertedu.classification)."""
        return save_classifier(self.model, folder, self.vocab_file, self.info)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """``(N, C)`` class probabilities of texts of any length, read as in training."""
        examples = [Example(self._frame(p)) for p in self._word_pieces(texts, False)]
        return predict_proba(self.model, examples, batch_size, self.tokenizer.pad_token_id)

    def predict(self, texts: Sequence[str], batch_size: int = 32, skip_empty: bool = False) -> list[Prediction | None]:
        """Classify texts of any length (long ones are cut to head + tail, as in training).

        A text without word pieces (only control or zero-width characters) raises a
        ``TextError``; with ``skip_empty=True`` its prediction is None instead.
        """
        pieces = self._word_pieces(texts, skip_empty)
        kept = [i for i, p in enumerate(pieces) if p]
        examples = [Example(self._frame(pieces[i])) for i in kept]
        predictions: list[Prediction | None] = [None] * len(pieces)
        if examples:
            probabilities = predict_proba(self.model, examples, batch_size, self.tokenizer.pad_token_id)
            for i, row in zip(kept, probabilities):
                predictions[i] = self._prediction(row, len(pieces[i]))
        return predictions

    def _word_pieces(self, texts: Sequence[str], allow_empty: bool) -> list[list[int]]:
        if not allow_empty:
            return word_pieces(self.tokenizer, texts)
        check_texts(texts)
        return self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False,
                              return_token_type_ids=False, verbose=False)["input_ids"]

    @torch.no_grad()
    def explain(self, text: str, layer: int = -1) -> Explanation:
        """Predict one text and return the attention from ``[CLS]`` over its words."""
        self.model.eval()
        pieces = word_pieces(self.tokenizer, [text])[0]
        ids = self._frame(pieces)
        out = self.model(torch.tensor([ids], device=model_device(self.model)), output_attentions=True)  # (1, T)
        probabilities = torch.softmax(out.logits.float(), dim=-1)[0].cpu().numpy()  # (C,)
        weights = cls_attention(out.attentions, layer)  # (T,)
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        words, word_weights = merge_word_pieces(tokens[1:-1], weights[1:-1].tolist())  # without [CLS], [SEP]
        return Explanation(self._prediction(probabilities, len(pieces)), words, word_weights)

    def _frame(self, pieces: list[int]) -> list[int]:
        """``[CLS]`` + head + tail + ``[SEP]``: what the model reads of a text."""
        kept = truncate_head_tail(pieces, self.truncation.body, self.truncation.head_tokens)
        return [self.tokenizer.cls_token_id, *kept, self.tokenizer.sep_token_id]

    def _prediction(self, probabilities: np.ndarray, n_tokens: int) -> Prediction:
        best = int(probabilities.argmax())
        return Prediction(self.info.labels[best], float(probabilities[best]),
                          {name: float(p) for name, p in zip(self.info.labels, probabilities)},
                          n_tokens, n_tokens > self.truncation.body)


def cls_attention(attentions: Sequence[Tensor], layer: int = -1) -> Tensor:
    """How much ``[CLS]`` attends to each token in one layer, averaged over heads: ``(T,)``.

    ``attentions``: ``L`` tensors ``(1, nh, T, T)``; row 0 of each head is the query of
    ``[CLS]``, the position the pooler reads. A hint of where the model looks, not a
    proof of why it decides (Jain & Wallace, 2019, "Attention is not Explanation").
    """
    return attentions[layer][0, :, 0, :].float().mean(dim=0).cpu()  # (nh, T) -> (T,)


def merge_word_pieces(tokens: Sequence[str], weights: Sequence[float]) -> tuple[list[str], list[float]]:
    """Glue ``##`` pieces to their word and add up their weights; renormalise to sum 1."""
    words: list[str] = []
    merged: list[float] = []
    for token, weight in zip(tokens, weights):
        if token.startswith("##") and words:
            words[-1] += token[2:]
            merged[-1] += weight
        else:
            words.append(token)
            merged.append(weight)
    total = sum(merged) or 1.0
    return words, [w / total for w in merged]

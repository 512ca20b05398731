"""From a raw review to BERT's input ids (chapter 1).

BERT splits text in two stages:

1. **Basic tokenization**: clean the text, lower-case it, strip accents, and split on
   whitespace and punctuation: ``"Don't!"`` -> ``["don", "'", "t", "!"]``.
2. **WordPiece**: cut each word into the longest pieces found in the vocabulary, left
   to right; a piece that continues a word starts with ``##``:
   ``"unwatchable"`` -> ``["un", "##watch", "##able"]``. A word with no possible split
   becomes ``[UNK]``.

Then the special tokens frame the sequence, ``[CLS] sentence A [SEP] (sentence B [SEP])``,
and ``[PAD]`` fills short sequences up to the batch length.

``BertTokenizer`` here is plain Python, written to be read; ``load_fast_tokenizer``
gives the Rust tokenizer of the ``tokenizers`` library (same ids, much faster), which the
later chapters use. ``train_wordpiece_vocab`` learns a small vocabulary from IMDb text for
the small models that chapter 4 pre-trains.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from bertedu.checkpoint import CONFIG_NAME, VOCAB_NAME
from bertedu.errors import UserError, UserFileNotFoundError
from bertedu.files import write_text
from bertedu.paths import data_dir

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
# The order of a vocabulary we train ourselves: [PAD] = 0, [UNK] = 1, ... [MASK] = 4.
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
MAX_CHARS_PER_WORD = 100  # longer "words" (URLs, ASCII art) become [UNK] outright


# ---------------------------------------------------------------------------------------
# Vocabulary files
# ---------------------------------------------------------------------------------------


def find_vocab(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a vocab file, else ``path/vocab.txt``."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if (path / VOCAB_NAME).is_file():
        return path / VOCAB_NAME
    raise UserFileNotFoundError(
        f"No vocabulary at {path}: pass a {VOCAB_NAME} file or a folder that contains one."
    )


def read_vocab_tokens(path: str | os.PathLike) -> list[str]:
    """The tokens of a vocab.txt in id order (line ``i`` holds token ``i``), checked to be usable.

    Raises a one-line ``UserError`` for a file that is not UTF-8, is empty, or repeats a
    token (a repeated token makes one of its ids unreachable: a damaged or edited file).
    """
    path = find_vocab(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise UserError(f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}, "
                        f"line {line}): a vocab.txt is UTF-8, one token per line. Restore the file.") from None
    # Lines as transformers reads them (open() in text mode: \n, \r\n or \r end a line).
    tokens = [line.rstrip("\n") for line in io.StringIO(text, newline=None)]
    if not tokens:
        raise UserError(f"{path} is empty: a vocab.txt holds one token per line. Restore the file.")
    first_line: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if token in first_line:
            raise UserError(f"{path} repeats the token {token!r} on lines {first_line[token] + 1} and {index + 1}: "
                            f"a vocabulary lists each token once. The file is damaged or edited; restore it.")
        first_line[token] = index
    return tokens


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """vocab.txt -> ``{token: id}``: one token per line, the id is the line number."""
    return {token: index for index, token in enumerate(read_vocab_tokens(path))}


def vocab_fingerprint(tokens: Sequence[str]) -> str:
    """SHA-256 of the tokens in order: changes when a single token moves (line endings do not count)."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def check_vocab_size(n_tokens: int, vocab_path: object, vocab_size: int, config_source: object) -> None:
    """A vocabulary of another size than the embedding table cannot belong to the model."""
    if n_tokens != vocab_size:
        raise UserError(
            f"{vocab_path} has {n_tokens:,} tokens but {config_source} says vocab_size={vocab_size:,}: "
            f"this vocabulary does not belong to the model, and its ids would point at the wrong embeddings. "
            f"Use the vocab.txt the model was trained with."
        )


def check_vocab(vocab: dict[str, int], vocab_path: object, config: Any, config_source: object = "the config") -> None:
    """Check that a vocabulary can belong to a model with ``config`` (a ``BertConfig``).

    What is guaranteed: the size equals ``vocab_size`` (one embedding row per token) and
    ``[PAD]`` sits at the config's ``pad_token_id``. What is checked as a convention: all five
    special tokens are there, with ``[UNK] [CLS] [SEP] [MASK]`` on four consecutive ids (BERT's
    vocabularies have 100-103, the course's 1-4). A vocabulary whose *ordinary* tokens were
    reordered passes both: nothing in config.json or the weights records where ``"film"``
    lives. ``save_classifier`` therefore records ``vocab_fingerprint`` in classifier.json, and
    ``load_classifier`` refuses a vocab.txt that no longer matches it.
    """
    check_vocab_size(len(vocab), vocab_path, config.vocab_size, config_source)
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise UserError(f"{vocab_path} lacks the special token(s) {missing}: it is not a BERT vocabulary "
                        f"(or it was damaged). Use the vocab.txt the model was trained with.")
    pad_id = getattr(config, "pad_token_id", 0)
    ids = [vocab[token] for token in (UNK, CLS, SEP, MASK)]
    if vocab[PAD] != pad_id or ids != list(range(ids[0], ids[0] + 4)):
        found = ", ".join(f"{token}={vocab[token]}" for token in SPECIAL_TOKENS)
        raise UserError(
            f"{vocab_path} has the special tokens at the wrong ids ({found}); {config_source} puts [PAD] at "
            f"{pad_id}, and BERT's vocabularies have [UNK] [CLS] [SEP] [MASK] on consecutive ids (100-103, or 1-4 "
            f"in the course's own). The lines were reordered: use the vocab.txt the model was trained with."
        )


# ---------------------------------------------------------------------------------------
# Stage 1: basic tokenization
# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def is_punctuation(char: str) -> bool:
    """Unicode punctuation, plus every non-alphanumeric printable ASCII char (``$``, ``^``, ...)."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


@lru_cache(maxsize=None)
def is_cjk(char: str) -> bool:
    """A CJK ideograph: Chinese text has no spaces, so each ideograph becomes a word."""
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


@lru_cache(maxsize=None)
def _clean_char(char: str) -> str:
    """Whitespace -> one space; control characters, NUL and U+FFFD -> nothing; CJK padded."""
    if char in " \t\n\r" or unicodedata.category(char) == "Zs":
        return " "
    if char in ("\0", "\ufffd") or unicodedata.category(char).startswith("C"):
        return ""
    return f" {char} " if is_cjk(char) else char


def clean_text(text: str) -> str:
    """Drop invisible characters, unify whitespace and put spaces around CJK ideographs."""
    return "".join(map(_clean_char, text))


def strip_accents(word: str) -> str:
    """``"café"`` -> ``"cafe"``: decompose (NFD) and drop the combining marks (category Mn)."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def split_punctuation(word: str) -> list[str]:
    """``"don't!"`` -> ``["don", "'", "t", "!"]``: every punctuation char is its own token."""
    pieces: list[str] = []
    start_new = True
    for char in word:
        if is_punctuation(char):
            pieces.append(char)
            start_new = True
        elif start_new:
            pieces.append(char)
            start_new = False
        else:
            pieces[-1] += char
    return pieces


def basic_tokenize(text: str, lower_case: bool = True) -> list[str]:
    """Raw text -> words and punctuation, lower-cased and without accents (uncased BERT)."""
    text = unicodedata.normalize("NFC", clean_text(text))  # one code point per accented letter
    words = []
    for word in text.split():
        if lower_case:
            word = strip_accents(word.lower())
        words.extend(split_punctuation(word))
    return words


# ---------------------------------------------------------------------------------------
# Stage 2: WordPiece
# ---------------------------------------------------------------------------------------


def wordpiece(word: str, vocab: dict[str, int] | set[str], unk_token: str = UNK) -> list[str]:
    """Greedy longest-match-first: ``"unwatchable"`` -> ``["un", "##watch", "##able"]``.

    From the current position take the longest prefix of the rest of the word that is in
    the vocabulary (``##``-prefixed unless at the word's start), then continue after it.
    If at some position no piece matches, the whole word becomes ``[UNK]``.
    """
    if len(word) > MAX_CHARS_PER_WORD:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        for end in range(len(word), start, -1):  # longest candidate first
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:  # no candidate matched
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


# ---------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------


def truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut two sequences to at most ``budget`` tokens together ("longest first").

    The shorter one keeps up to half the budget; the longer one gets the rest. (This is the
    rule of the ``tokenizers`` library; on ties the first counts as the shorter.)
    """
    if len(a) + len(b) <= budget:
        return a, b
    if len(a) <= len(b):
        keep_a = min(len(a), budget // 2)
        return a[:keep_a], b[: budget - keep_a]
    keep_b = min(len(b), budget // 2)
    return a[: budget - keep_b], b[:keep_b]


class BertTokenizer:
    """BERT's tokenizer in plain Python: text -> ``input_ids``, ``token_type_ids``,
    ``attention_mask``. It gives the same ids as the ``transformers`` BERT tokenizer.

    >>> tok = BertTokenizer.from_pretrained(default_checkpoint())
    >>> batch = tok(["A fine film.", "Dull."])   # dict of (B, T) tensors, padded
    """

    def __init__(self, vocab: dict[str, int], lower_case: bool = True, model_max_length: int = 512) -> None:
        missing = [token for token in SPECIAL_TOKENS if token not in vocab]
        if missing:
            raise UserError(f"The vocabulary lacks the special token(s) {missing}.")
        self.vocab = vocab
        self.ids_to_tokens = {index: token for token, index in vocab.items()}
        self.lower_case = lower_case
        self.model_max_length = model_max_length
        # Special tokens written in the text ("... [MASK] ...") are kept whole.
        self._special = re.compile("(" + "|".join(map(re.escape, SPECIAL_TOKENS)) + ")")
        self._word_cache: dict[str, list[str]] = {}  # reviews repeat words a lot

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> BertTokenizer:
        """From a vocab.txt or a checkpoint folder that holds one."""
        vocab = load_vocab(path)
        check_vocab_of_model(vocab, find_vocab(path), path, None)
        return cls(vocab, **kwargs)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def pad_token_id(self) -> int:
        return self.vocab[PAD]

    @property
    def unk_token_id(self) -> int:
        return self.vocab[UNK]

    @property
    def cls_token_id(self) -> int:
        return self.vocab[CLS]

    @property
    def sep_token_id(self) -> int:
        return self.vocab[SEP]

    @property
    def mask_token_id(self) -> int:
        return self.vocab[MASK]

    def tokenize(self, text: str) -> list[str]:
        """Text -> WordPiece tokens (no [CLS]/[SEP] added)."""
        tokens = []
        for chunk in self._special.split(text):
            if chunk in SPECIAL_TOKENS:
                tokens.append(chunk)
                continue
            for word in basic_tokenize(chunk, self.lower_case):
                if word not in self._word_cache:
                    self._word_cache[word] = wordpiece(word, self.vocab)
                tokens.extend(self._word_cache[word])
        return tokens

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        unk = self.unk_token_id
        return [self.vocab.get(token, unk) for token in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.ids_to_tokens[int(i)] for i in ids]

    def encode(
        self, text: str, text_pair: str | None = None, max_length: int | None = None
    ) -> dict[str, list[int]]:
        """One example: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``.

        Truncates to ``max_length`` tokens (default ``model_max_length``) including the
        special tokens. ``token_type_ids`` are 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``.
        """
        max_length = max_length or self.model_max_length
        a = self.convert_tokens_to_ids(self.tokenize(text))
        b = self.convert_tokens_to_ids(self.tokenize(text_pair)) if text_pair is not None else []
        n_special = 3 if text_pair is not None else 2
        if max_length < n_special + (text_pair is not None):
            raise ValueError(f"max_length={max_length} leaves no room for text next to {n_special} special tokens.")
        a, b = truncate_pair(a, b, max_length - n_special)
        input_ids = [self.cls_token_id, *a, self.sep_token_id]
        token_type_ids = [0] * len(input_ids)
        if text_pair is not None:
            input_ids += [*b, self.sep_token_id]
            token_type_ids += [1] * (len(b) + 1)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids}

    def __call__(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        max_length: int | None = None,
        padding: bool | str = True,
    ) -> dict[str, torch.Tensor]:
        """A batch of texts (or pairs) -> ``input_ids``, ``token_type_ids``,
        ``attention_mask``, each a ``(B, T)`` long tensor.

        ``padding=True`` pads to the longest example, ``"max_length"`` to ``max_length``.
        The attention mask is 1 on real tokens and 0 on padding.
        """
        if isinstance(texts, str):
            texts = [texts]
            text_pairs = [text_pairs] if isinstance(text_pairs, str) else text_pairs
        pairs = text_pairs if text_pairs is not None else [None] * len(texts)
        if len(pairs) != len(texts):
            raise ValueError(f"Got {len(texts)} texts but {len(pairs)} text pairs.")
        encoded = [self.encode(text, pair, max_length) for text, pair in zip(texts, pairs)]
        if padding == "max_length":
            length = max_length or self.model_max_length
        elif padding:
            length = max(len(e["input_ids"]) for e in encoded)
        else:
            length = None
            if len({len(e["input_ids"]) for e in encoded}) > 1:
                raise ValueError("Sequences have different lengths: use padding=True to batch them.")
        return pad_batch(encoded, self.pad_token_id, length)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text: glue ``##`` pieces to the piece before them."""
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [token for token in tokens if token not in SPECIAL_TOKENS]
        return " ".join(tokens).replace(" ##", "")


def pad_batch(encoded: Sequence[dict[str, list[int]]], pad_id: int, length: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad encoded examples to ``length`` (default: the longest) as ``(B, T)`` tensors."""
    length = length or max(len(e["input_ids"]) for e in encoded)
    batch = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    for e in encoded:
        n_pad = length - len(e["input_ids"])
        batch["input_ids"].append(e["input_ids"] + [pad_id] * n_pad)
        batch["token_type_ids"].append(e["token_type_ids"] + [0] * n_pad)
        batch["attention_mask"].append([1] * len(e["input_ids"]) + [0] * n_pad)
    return {name: torch.tensor(rows, dtype=torch.long) for name, rows in batch.items()}


# ---------------------------------------------------------------------------------------
# The fast library tokenizer, and training a vocabulary
# ---------------------------------------------------------------------------------------


def load_fast_tokenizer(path: str | os.PathLike, model_max_length: int = 512, config: Any = None):
    """The Rust-backed ``transformers`` BERT tokenizer for a vocab.txt (or a folder with one).

    Lower-cases (all the course's vocabularies are uncased). ``model_max_length`` makes
    ``truncation=True`` cut at BERT's 512 positions. The vocabulary is checked against the
    model's ``config`` (a ``BertConfig``; by default the config.json next to it when ``path``
    is a checkpoint folder): see ``check_vocab``.
    """
    import transformers
    from transformers import BertTokenizerFast

    vocab_path = find_vocab(path)
    vocab = load_vocab(vocab_path)  # one-line errors for empty, non-UTF-8 or damaged files
    check_vocab_of_model(vocab, vocab_path, path, config)
    # transformers 5 takes the vocab file as `vocab` (and ignores `vocab_file`); 4 as `vocab_file`.
    argument = "vocab" if int(transformers.__version__.split(".")[0]) >= 5 else "vocab_file"
    tokenizer = BertTokenizerFast(
        **{argument: str(vocab_path)}, do_lower_case=True, model_max_length=model_max_length
    )
    if tokenizer.vocab_size != len(vocab):
        raise UserError(
            f"The fast tokenizer loaded {tokenizer.vocab_size} tokens from {vocab_path}, "
            f"which has {len(vocab)} lines."
        )
    return tokenizer


def check_vocab_of_model(vocab: dict[str, int], vocab_path: Path, path: str | os.PathLike, config: Any) -> None:
    """``check_vocab`` against ``config``, or against ``path/config.json`` when ``path`` is a checkpoint folder."""
    source: object = "the model's config"
    if config is None:
        folder = Path(path).expanduser()
        if not (folder.is_dir() and (folder / CONFIG_NAME).is_file()):
            return  # a bare vocab.txt: nothing to check it against
        from bertedu.model import BertConfig

        config, source = BertConfig.from_pretrained(folder), folder / CONFIG_NAME
    check_vocab(vocab, vocab_path, config, source)


def train_wordpiece_vocab(texts: Iterable[str], vocab_size: int, output_dir: str | os.PathLike) -> Path:
    """Learn a lower-cased WordPiece vocabulary from ``texts``; write ``output_dir/vocab.txt``.

    Uses the ``tokenizers`` library's trainer with BERT's normalizer and pre-tokenizer.
    The special tokens come first: ``[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4``, then
    the learned tokens in sorted order. Returns the vocab path.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token=UNK))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        limit_alphabet=1000,  # as BERT: rare characters map to [UNK] instead of filling the vocab
        continuing_subword_prefix="##",
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # The trainer breaks ties between equally frequent merges arbitrarily, so the order of
    # its tokens (and, rarely, a few tokens at the size limit) can change from run to run.
    # Sorting keeps the ids stable whenever the token set is the same; train a vocabulary
    # once and keep it with the checkpoints (as imdb_wordpiece_vocab does).
    learned = sorted(set(tokenizer.get_vocab()) - set(SPECIAL_TOKENS))
    path = Path(output_dir) / VOCAB_NAME
    text = "".join(f"{token}\n" for token in [*SPECIAL_TOKENS, *learned])
    write_text(path, text)
    return path


def imdb_wordpiece_vocab(vocab_size: int = 8000) -> Path:
    """The course's small IMDb vocabulary: ``<data>/tokenizers/imdb-wordpiece-<size>/vocab.txt``.

    Trained on the 25,000 IMDb training reviews on first use (a few seconds), read from
    disk afterwards. Chapter 1 shows how; chapters 4 and 5 call this directly.
    """
    folder = data_dir() / "tokenizers" / f"imdb-wordpiece-{vocab_size}"
    if (folder / VOCAB_NAME).is_file():
        return folder / VOCAB_NAME
    from bertedu.data import load_imdb

    print(f"Training a {vocab_size}-token WordPiece vocabulary on the IMDb training reviews -> {folder}")
    return train_wordpiece_vocab(load_imdb("train").texts, vocab_size, folder)

"""The IMDb Large Movie Review Dataset (Maas et al., 2011): 50,000 labelled reviews.

Where the reviews come from, in order:

1. an explicit source: the ``archive`` argument or the ``BERTEDU_IMDB_ARCHIVE`` environment
   variable, pointing at ``aclImdb_v1.tar.gz`` (or any archive with the same layout) or at
   an extracted ``aclImdb/`` folder;
2. the parsed cache in ``<data>/imdb/`` (``<data>`` is ``data/`` or ``BERTEDU_DATA_DIR``);
3. a download of the official archive, with a progress bar and a sha256 check.

The archive layout is ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``. Parsing 50,000
small files takes seconds, so it happens once: the reviews are written to one JSON cache
file keyed by the source's fingerprint, and later loads read that file.

Text cleaning happens in exactly one place, :func:`clean_review`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from bertedu.errors import UserError
from bertedu.files import atomic_write
from bertedu.paths import data_dir

ARCHIVE_ENV = "BERTEDU_IMDB_ARCHIVE"
URL_ENV = "BERTEDU_IMDB_URL"  # a mirror of the official archive
SHA256_ENV = "BERTEDU_IMDB_SHA256"  # the mirror's checksum, if it is not the official file
OFFICIAL_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
KNOWN_ARCHIVES = {
    OFFICIAL_SHA256: "official aclImdb_v1.tar.gz",
    "452105421ca6e1ae05d28c9c735d79255d11eefef0b62b272a866c646b8b8445": "aclImdb_labeled.tar.gz (official minus train/unsup)",
}
SPLITS = ("train", "test")
LABELS = {"neg": 0, "pos": 1}
LABEL_NAMES = ("negative", "positive")
CACHE_VERSION = 1

# aclImdb/train/pos/123_9.txt -> split, folder, id, rating (unsup/ and other files are skipped)
_REVIEW_PATH = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_LINE_BREAK = re.compile(r"<br\s*/?>", flags=re.IGNORECASE)


class ImdbDataError(UserError):
    """The dataset could not be read. The message says what to do about it."""


@dataclass(frozen=True)
class Review:
    """One review: ``label`` is 0 (negative) or 1 (positive); ``rating`` is 1-10 stars."""

    text: str
    label: int
    rating: int
    review_id: int


class ReviewSet(Sequence[Review]):
    """An immutable, sized sequence of reviews with column views for batching."""

    def __init__(self, reviews: Iterable[Review], split: str = "") -> None:
        self._reviews = tuple(reviews)
        self.split = split

    @overload
    def __getitem__(self, index: int) -> Review: ...
    @overload
    def __getitem__(self, index: slice) -> ReviewSet: ...
    def __getitem__(self, index: int | slice) -> Review | ReviewSet:
        if isinstance(index, slice):
            return ReviewSet(self._reviews[index], self.split)
        return self._reviews[index]

    def __len__(self) -> int:
        return len(self._reviews)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReviewSet) and self._reviews == other._reviews

    def __hash__(self) -> int:
        return hash(self._reviews)

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self._reviews]

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self._reviews]

    def __repr__(self) -> str:
        positives = sum(self.labels)
        return f"ReviewSet(split={self.split!r}, n={len(self)}, positive={positives}, negative={len(self) - positives})"


def clean_review(text: str) -> str:
    """The one place review text is cleaned.

    IMDb reviews were scraped from HTML and keep their line breaks as ``<br />`` tags
    (in 59% of the training reviews). BERT's tokenizer would split a tag into ``<``, ``br``,
    ``/``, ``>``: four tokens of noise per line break. We turn them into newlines, which
    the tokenizer treats as whitespace, and strip the ends. Nothing else is changed:
    casing and accents are the tokenizer's job (chapter 1).
    """
    return _LINE_BREAK.sub("\n", text).strip()


# ----------------------------------------------------------------------------- loading


def load_imdb(
    split: str = "train",
    *,
    n: int | None = None,
    seed: int = 0,
    archive: str | os.PathLike[str] | None = None,
    clean: bool = True,
) -> ReviewSet:
    """Load one split of IMDb: 25,000 reviews, half positive, ordered by label then id.

    Args:
        split: ``"train"`` or ``"test"``.
        n: if given, a label-balanced random subsample of ``n`` reviews (``n // 2``
            negative), the same for the same ``seed``, in shuffled order.
        seed: the subsample's seed.
        archive: an archive or extracted ``aclImdb/`` folder; defaults to
            ``$BERTEDU_IMDB_ARCHIVE``, then the cache, then a download.
        clean: apply :func:`clean_review` (turn ``<br />`` into newlines).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: IMDb has {' and '.join(SPLITS)}. "
                         "Carve a validation split from train with train_validation_split().")
    raw = _MEMO(archive)[split]
    reviews = ReviewSet(
        (Review(clean_review(text) if clean else text, label, rating, review_id)
         for label, review_id, rating, text in raw),
        split,
    )
    return balanced_subsample(reviews, n, seed) if n is not None else reviews


def balanced_subsample(reviews: ReviewSet, n: int, seed: int = 0) -> ReviewSet:
    """``n`` reviews, ``n // 2`` negative and the rest positive, drawn with ``seed``."""
    by_label = [[r for r in reviews if r.label == label] for label in (0, 1)]
    wanted = (n // 2, n - n // 2)
    if n < 0 or any(k > len(group) for k, group in zip(wanted, by_label)):
        raise ValueError(f"Cannot draw a balanced subsample of n={n} from {reviews!r}.")
    rng = random.Random(seed)
    chosen = [r for k, group in zip(wanted, by_label) for r in rng.sample(group, k)]
    rng.shuffle(chosen)  # mix the labels so any prefix is roughly balanced too
    return ReviewSet(chosen, reviews.split)


def train_validation_split(reviews: ReviewSet, n_validation: int, seed: int = 0) -> tuple[ReviewSet, ReviewSet]:
    """Carve a label-balanced validation set of ``n_validation`` reviews out of ``reviews``.

    Returns ``(train, validation)``; together they hold every review exactly once, and the
    test split is never touched, so it stays a fair final exam.
    """
    validation = balanced_subsample(reviews, n_validation, seed)
    held_out = {r.review_id * 2 + r.label for r in validation}  # ids repeat across labels
    train = ReviewSet((r for r in reviews if r.review_id * 2 + r.label not in held_out), reviews.split)
    return train, ReviewSet(validation, "validation")


# Raw records, as cached: (label, review_id, rating, text)
RawSplits = dict[str, list[tuple[int, int, int, str]]]


class _Memo:
    """A per-process memo around :func:`read_reviews`, so notebooks can call load_imdb freely."""

    def __init__(self) -> None:
        self._by_fingerprint: dict[str, RawSplits] = {}

    def __call__(self, archive: str | os.PathLike[str] | None) -> RawSplits:
        source = explicit_source(archive)
        key = fingerprint(source) if source else "cache"
        if key not in self._by_fingerprint:
            self._by_fingerprint = {key: read_reviews(source)}  # keep one dataset in memory
        return self._by_fingerprint[key]

    def clear(self) -> None:
        self._by_fingerprint.clear()


_MEMO = _Memo()


def explicit_source(archive: str | os.PathLike[str] | None = None) -> Path | None:
    """The archive or folder the user named (argument first, then the environment)."""
    named = archive or os.environ.get(ARCHIVE_ENV)
    if not named:
        return None
    path = Path(named).expanduser()
    if not path.exists():
        origin = "archive argument" if archive else ARCHIVE_ENV
        raise ImdbDataError(
            f"The IMDb source {str(path)!r} (from {origin}) does not exist. Point it at "
            "aclImdb_v1.tar.gz or at an extracted aclImdb/ folder, or unset it to use the "
            "cache or download the dataset."
        )
    return path


def cache_path() -> Path:
    # Plain JSON: gunzip alone took longer than parsing the JSON, and disk is cheap here.
    return data_dir() / "imdb" / f"reviews-v{CACHE_VERSION}.json"


def read_reviews(source: Path | None = None) -> RawSplits:
    """Every review of both splits, from the cache when it matches ``source``."""
    cache = cache_path()
    wanted = fingerprint(source) if source else None
    cached = _read_cache(cache)
    if cached is not None and (wanted is None or cached["fingerprint"] == wanted):
        return cached["splits"]
    if source is None:
        source = download_archive()
        wanted = fingerprint(source)
    splits = parse_source(source)
    _write_cache(cache, {"fingerprint": wanted, "source": str(source), "splits": splits})
    return splits


def _read_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # a damaged cache is rebuilt from the source, never trusted
    if cached.get("version") != CACHE_VERSION:
        return None
    cached["splits"] = {k: [tuple(r) for r in v] for k, v in cached["splits"].items()}
    return cached


def _write_cache(path: Path, payload: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": CACHE_VERSION, **payload}, f)

    atomic_write(path, write)


def fingerprint(source: Path) -> str:
    """sha256 of an archive; for a folder, a hash of its files' names, sizes and times."""
    if source.is_file():
        return file_sha256(source)
    digest = hashlib.sha256()
    for path in sorted(source.rglob("*.txt")):
        stat = path.stat()
        digest.update(f"{path.relative_to(source)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return "dir-" + digest.hexdigest()


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- parsing


def parse_source(source: Path) -> RawSplits:
    """Parse an archive or an extracted folder into raw records, checking the layout."""
    files = _folder_files(source) if source.is_dir() else _archive_files(source)
    splits: RawSplits = {split: [] for split in SPLITS}
    for name, payload in files:
        match = _REVIEW_PATH.search(name)
        if not match:
            continue
        split, folder, review_id, rating = match.groups()
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImdbDataError(
                f"{name} in {source} is not valid UTF-8 ({error.reason} at byte {error.start}). "
                "The dataset files are UTF-8, so the source is damaged or not the IMDb "
                "dataset: download it again or point BERTEDU_IMDB_ARCHIVE at a good copy."
            ) from None
        splits[split].append((LABELS[folder], int(review_id), int(rating), text))
    _check_layout(splits, source)
    for records in splits.values():
        records.sort(key=lambda r: (r[0], r[1]))  # archive order varies; ours must not
    return splits


def _archive_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """Stream (name, bytes) of the archive's regular files, with a clear error if it is broken."""
    try:
        with tarfile.open(archive, mode="r|*") as tar:  # streaming: one pass, no seeking
            for member in tar:
                if member.isfile() and _REVIEW_PATH.search(member.name):
                    yield member.name, tar.extractfile(member).read()  # type: ignore[union-attr]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        if isinstance(error, OSError) and not _looks_truncated(error):
            raise
        raise ImdbDataError(
            f"The archive {archive} is truncated or corrupt ({type(error).__name__}: {error}). "
            f"Delete it and run `bertedu data` to download it again, or point {ARCHIVE_ENV} "
            f"at a complete copy (the official file has sha256 {OFFICIAL_SHA256})."
        ) from None


def _looks_truncated(error: OSError) -> bool:
    # gzip raises a bare OSError/EOFError subclass for cut-off or garbled streams.
    return not isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError))


def _folder_files(folder: Path) -> Iterator[tuple[str, bytes]]:
    root = folder.parent if folder.name == "aclImdb" else folder
    for path in sorted((root / "aclImdb").glob("*/*/*.txt")):
        yield path.relative_to(root).as_posix(), path.read_bytes()


def _check_layout(splits: RawSplits, source: Path) -> None:
    missing = [f"aclImdb/{split}/{folder}/" for split in SPLITS for folder, label in LABELS.items()
               if not any(r[0] == label for r in splits[split])]
    if missing:
        raise ImdbDataError(
            f"{source} does not have the IMDb layout: no reviews under {', '.join(missing)}. "
            "Expected aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt as in the official "
            "aclImdb_v1.tar.gz: check that you pointed at the right file."
        )


# ----------------------------------------------------------------------------- download


def download_archive(url: str | None = None, sha256: str | None = None) -> Path:
    """Download the official archive into ``<data>/imdb/`` (once), verify it, return its path."""
    url = url or os.environ.get(URL_ENV) or OFFICIAL_URL
    sha256 = sha256 or os.environ.get(SHA256_ENV) or OFFICIAL_SHA256
    target = data_dir() / "imdb" / "aclImdb_v1.tar.gz"
    if target.is_file() and file_sha256(target) == sha256:
        return target

    def fetch(tmp: Path) -> None:
        digest = _stream_to_file(url, tmp)
        if digest != sha256:
            raise ImdbDataError(
                f"The file downloaded from {url} has sha256 {digest}, expected {sha256}: it is "
                "damaged or not the IMDb archive. Nothing was kept; run `bertedu data` again, "
                f"or download it yourself and set {ARCHIVE_ENV}=/path/to/aclImdb_v1.tar.gz."
            )

    atomic_write(target, fetch)
    return target


def _stream_to_file(url: str, path: Path) -> str:
    """Copy ``url`` to ``path`` with a progress bar; return the sha256 of what was written."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="IMDb archive") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ImdbDataError(
            f"Could not download the IMDb archive from {url} ({error}). If this machine is "
            f"offline, copy aclImdb_v1.tar.gz onto it and set {ARCHIVE_ENV}=/path/to/it "
            "(or pass --archive)."
        ) from None
    return digest.hexdigest()


# ----------------------------------------------------------------------------- extraction


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract ``archive`` into ``target`` (for browsing the files); return ``target/aclImdb``.

    Refuses members whose path would land outside ``target`` (``../`` or absolute names,
    links pointing out), the classic tar-slip attack, and extracts into a temp folder that
    is renamed at the end, so a failure leaves no half-extracted tree.
    """
    target = Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".extracting-"))
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                _refuse_escape(member, staging)
            tar.extractall(staging, filter="data")
        final = target / "aclImdb"
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / "aclImdb", final)
        return final
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise ImdbDataError(f"Could not extract {archive}: it is truncated or corrupt ({error}).") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_escape(member: tarfile.TarInfo, root: Path) -> None:
    destination = (root / member.name).resolve()
    escapes = not destination.is_relative_to(root)
    if member.issym() or member.islnk():
        escapes |= not (destination.parent / member.linkname).resolve().is_relative_to(root)
    if escapes:
        raise ImdbDataError(
            f"Refusing to extract {member.name!r}: it would be written outside {root.parent}. "
            "The archive is not a genuine IMDb archive; do not use it."
        )

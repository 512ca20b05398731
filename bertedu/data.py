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

Nothing damaged is taken for real. An archive is read to the end of its compressed stream
(gzip, bz2 and xz keep a checksum there), and every source must hold the official counts:
12,500 reviews per label per split. The cache stores a sha256 of its content and its
structure is checked on every load; a cache that fails either is rebuilt from the source.

Text cleaning happens in exactly one place, :func:`clean_review`.
"""
from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import json
import lzma
import os
import random
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, overload

from bertedu.errors import UserError
from bertedu.files import atomic_write, write_text
from bertedu.paths import DATA_DIR_ENV, data_dir

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
EXPECTED_PER_LABEL = 12_500  # the official dataset: 12,500 reviews per label in each split
CACHE_VERSION = 2  # v2: a header line with the content's sha256, then the reviews
EXTRACTED_MARKER = ".bertedu-extracted"  # written into every aclImdb/ that extract_archive creates
# The first bytes of the archives we can read: compressed with gzip, bz2 or xz, or a plain tar
# (whose "ustar" magic sits at byte 257).
_COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}

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
    """The archive or folder the user named (argument first, then the environment).

    Raises :class:`ImdbDataError` when it is missing, unreadable, empty or not an archive.
    """
    named = archive or os.environ.get(ARCHIVE_ENV)
    if not named:
        return None
    path = Path(named).expanduser()
    origin = "archive argument" if archive else ARCHIVE_ENV
    if not path.exists():
        raise ImdbDataError(
            f"The IMDb source {str(path)!r} (from {origin}) does not exist. Point it at "
            "aclImdb_v1.tar.gz or at an extracted aclImdb/ folder, or unset it to use the "
            "cache or download the dataset."
        )
    problem = source_problem(path)
    if problem:
        raise ImdbDataError(f"The IMDb source {str(path)!r} (from {origin}) {problem}.")
    return path


def source_problem(path: Path) -> str | None:
    """What is wrong with an archive or folder, from a cheap look (size, first bytes), or None.

    The full check (the whole compressed stream and the review counts) happens when it is parsed.
    """
    try:
        if path.is_dir():
            with os.scandir(path):
                pass
            root = path.parent if path.name == "aclImdb" else path
            missing = [f"aclImdb/{split}/{folder}/" for split in SPLITS for folder in LABELS
                       if not (root / "aclImdb" / split / folder).is_dir()]
            if missing:
                return (f"is a folder without {', '.join(missing)}: point it at aclImdb_v1.tar.gz "
                        "or at an extracted aclImdb/ folder")
            return None
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as error:
        return f"cannot be read ({error.strerror}): check its permissions"
    if not head:
        return ("is an empty file (0 bytes): an interrupted download? Delete it and point "
                f"{ARCHIVE_ENV} at a complete aclImdb_v1.tar.gz")
    if not any(head.startswith(magic) for magic in _COMPRESSED_MAGIC) and head[257:262] != b"ustar":
        return ("is not a tar archive (neither gzip, bz2, xz nor plain tar): point it at "
                "aclImdb_v1.tar.gz or at an extracted aclImdb/ folder")
    return None


def cache_path() -> Path:
    # Plain JSON: gunzip alone took longer than parsing the JSON, and disk is cheap here.
    return data_dir() / "imdb" / f"reviews-v{CACHE_VERSION}.json"


def read_reviews(source: Path | None = None) -> RawSplits:
    """Every review of both splits, from the cache when it is valid and matches ``source``.

    An invalid cache (damaged, edited, of the wrong shape) is treated as absent: it is rebuilt
    from ``source`` (or the downloaded archive) with a one-line note on stderr.
    """
    cache = cache_path()
    wanted = fingerprint(source) if source else None
    problem = None
    try:
        cached = _read_cache(cache)
    except InvalidCacheError as error:
        problem, cached = str(error), None
    if cached is not None and (wanted is None or cached["fingerprint"] == wanted):
        return cached["splits"]
    if source is None:
        try:
            source = download_archive()
        except ImdbDataError as error:
            if problem:
                raise ImdbDataError(f"The IMDb cache {cache} is invalid ({problem}) and there is no "
                                    f"source to rebuild it from. {error}") from None
            raise
    if problem:
        _note(f"the IMDb cache {cache} is invalid ({problem}); rebuilding it from {source}")
    wanted = fingerprint(source)
    splits = parse_source(source)
    _write_cache(cache, {"fingerprint": wanted, "source": str(source)}, splits)
    return splits


class InvalidCacheError(Exception):
    """The parsed cache cannot be trusted; the message says why. (Internal: it is rebuilt.)"""


def _note(message: str) -> None:
    print(f"bertedu: note: {message}", file=sys.stderr)


def cache_problem(path: Path | None = None) -> str | None:
    """What is wrong with the parsed cache (its header and checksum; no parsing), or None.

    Raises FileNotFoundError when there is no cache.
    """
    try:
        _read_cache_bytes(path or cache_path())
    except InvalidCacheError as problem:
        return str(problem)
    return None


def _read_cache_bytes(path: Path) -> tuple[dict, bytes]:
    """The cache's header and its verified body (the reviews' JSON)."""
    try:
        with open(path, "rb") as f:
            header_line = f.readline(1 << 16)
            body = f.read()
    except IsADirectoryError:
        raise InvalidCacheError("it is a folder") from None
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise InvalidCacheError(f"cannot be read: {error.strerror}") from None
    try:
        header = json.loads(header_line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidCacheError("its first line is not the cache header") from None
    if not isinstance(header, dict) or header.get("version") != CACHE_VERSION:
        raise InvalidCacheError(f"not a version-{CACHE_VERSION} cache header")
    if not isinstance(header.get("fingerprint"), str) or not isinstance(header.get("sha256"), str):
        raise InvalidCacheError("its header lacks the source's fingerprint or the content's sha256")
    if hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise InvalidCacheError("its content does not match its sha256: it was edited or damaged")
    return header, body


def _read_cache(path: Path) -> dict | None:
    """``{"fingerprint", "source", "splits"}`` from a valid cache; None when there is none."""
    try:
        header, body = _read_cache_bytes(path)
    except FileNotFoundError:
        return None
    try:
        splits = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidCacheError("its reviews are not valid JSON") from None
    try:
        splits = _checked_records(splits)
    except TypeError as error:
        raise InvalidCacheError(str(error)) from None
    if problem := _count_problem(splits):
        raise InvalidCacheError(problem)
    return {"fingerprint": header["fingerprint"], "source": header.get("source"), "splits": splits}


def _checked_records(splits: object) -> RawSplits:
    """``{"train": [...], "test": [...]}`` of ``(label, review_id, rating, text)``, or TypeError."""
    if not isinstance(splits, dict) or sorted(splits) != sorted(SPLITS):
        raise TypeError(f"its reviews are not a mapping of {' and '.join(SPLITS)}")
    checked: RawSplits = {}
    for split in SPLITS:
        records = splits[split]
        if not isinstance(records, list):
            raise TypeError(f"its {split} split is not a list")
        try:
            checked[split] = [(label, review_id, rating, text) for label, review_id, rating, text in records]
        except (TypeError, ValueError):
            raise TypeError(f"its {split} split holds records that are not [label, id, rating, text]") from None
        for label, review_id, rating, text in checked[split]:
            if (label not in (0, 1) or type(review_id) is not int or type(rating) is not int
                    or not isinstance(text, str)):
                raise TypeError(f"its {split} split holds a malformed record for review {review_id!r}")
    return checked


def _write_cache(path: Path, metadata: dict, splits: RawSplits) -> None:
    """One header line (version, fingerprint, source, sha256 of the rest), then the reviews."""
    body = json.dumps(splits).encode("utf-8")
    header = {"version": CACHE_VERSION, **metadata, "sha256": hashlib.sha256(body).hexdigest()}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(json.dumps(header).encode("utf-8") + b"\n")
            f.write(body)

    with _writing_into_data_dir(path.parent, "the IMDb cache"):
        atomic_write(path, write)
    for version in range(1, CACHE_VERSION):  # our own older caches: 67 MB each, never read again
        with contextlib.suppress(OSError):
            path.with_name(f"reviews-v{version}.json").unlink(missing_ok=True)


@contextlib.contextmanager
def _writing_into_data_dir(folder: Path, what: str, fix: str = "") -> Iterator[None]:
    """Turn "permission denied" / "read-only file system" while writing into a UserError."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
            raise
        raise ImdbDataError(
            f"Cannot write {what} into {folder} ({error.strerror}). "
            + (fix or f"Set {DATA_DIR_ENV} to a folder you can write to.")
        ) from None


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
    """Parse an archive or an extracted folder into raw records, checking layout and counts."""
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
    _check_counts(splits, source)
    for records in splits.values():
        records.sort(key=lambda r: (r[0], r[1]))  # archive order varies; ours must not
    return splits


def _archive_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """Stream (name, bytes) of the archive's review files; a clear error if it is damaged."""
    with _verified_tar(archive) as tar:
        for member in tar:
            if member.isfile() and _REVIEW_PATH.search(member.name):
                yield member.name, tar.extractfile(member).read()  # type: ignore[union-attr]


@contextlib.contextmanager
def _verified_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    """A TarFile over ``archive``, read front to back, that checks it was whole when the caller is done.

    ``tarfile`` alone is not enough: it stops at the first damaged header *without an
    error*, and it never reads the compressed stream to its end, where gzip (and bz2, xz)
    keep the checksum and length of the data. So we decompress with the module that checks
    them, and at the end read what is left after the last member: it must be the tar's zero
    padding, the decompressor must reach the end of its stream with a good checksum, and
    the whole file must have been read.
    """
    try:
        size = archive.stat().st_size
        # mode "r:" reads `stream` directly (faster than "r|", which adds a buffer of its own);
        # the members are read in order, so every seek is forward.
        with (open(archive, "rb") as raw, _decompressed(raw) as stream,
              tarfile.open(fileobj=stream, mode="r:") as tar):
            yield tar
            # `stream` is now just after the header where iteration stopped: read it to the end,
            # where the decompressor checks the CRC.
            while chunk := stream.read(1 << 20):
                if chunk.strip(b"\0"):
                    raise _Damaged(f"the tar stream stops at a damaged header at byte {tar.offset:,} "
                                   "of the uncompressed data, but more data follows it")
            if raw.tell() != size:
                raise _Damaged(f"only {raw.tell():,} of its {size:,} bytes belong to the archive")
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, _Damaged, OSError) as error:
        if isinstance(error, OSError) and not _looks_truncated(error):
            raise
        detail = str(error) if isinstance(error, _Damaged) else f"{type(error).__name__}: {error}"
        raise ImdbDataError(
            f"The archive {archive} is truncated or corrupt ({detail}). "
            f"Delete it and run `bertedu data` to download it again, or point {ARCHIVE_ENV} "
            f"at a complete copy (the official file has sha256 {OFFICIAL_SHA256})."
        ) from None


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """``raw`` read through the decompressor its first bytes name (or as is, for a plain tar).

    The decompressors check the stream's checksum when they reach its end, and leave ``raw``
    open when they are closed.
    """
    head = raw.read(6)
    raw.seek(0)
    kind = next((kind for magic, kind in _COMPRESSED_MAGIC.items() if head.startswith(magic)), "tar")
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bz2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    return raw


class _Damaged(Exception):
    """The archive's data does not end the way a whole archive ends."""


def _looks_truncated(error: OSError) -> bool:
    # gzip raises a bare OSError/EOFError subclass for cut-off or garbled streams.
    return not isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError))


def _folder_files(folder: Path) -> Iterator[tuple[str, bytes]]:
    root = folder.parent if folder.name == "aclImdb" else folder
    for path in sorted((root / "aclImdb").glob("*/*/*.txt")):
        try:
            payload = path.read_bytes()
        except OSError as error:
            raise ImdbDataError(f"Cannot read {path} ({error.strerror}): check the folder's permissions.") from None
        yield path.relative_to(root).as_posix(), payload


def _folder_counts(splits: RawSplits) -> dict[str, int]:
    """Distinct reviews per folder: ``{"aclImdb/train/neg/": 12500, ...}``."""
    return {f"aclImdb/{split}/{folder}/": len({r[1] for r in splits[split] if r[0] == label})
            for split in SPLITS for folder, label in LABELS.items()}


def _count_problem(splits: RawSplits) -> str | None:
    """Which folders do not hold the official 12,500 distinct reviews, or None."""
    counts = _folder_counts(splits)
    wrong = [f"{folder} has {count:,}" for folder, count in counts.items() if count != EXPECTED_PER_LABEL]
    if not wrong and sum(map(len, splits.values())) != sum(counts.values()):
        wrong = ["some reviews are repeated"]
    return f"{', '.join(wrong)}, expected {EXPECTED_PER_LABEL:,} distinct reviews each" if wrong else None


def _check_counts(splits: RawSplits, source: Path) -> None:
    """The official layout and counts: 12,500 distinct reviews per label in each split."""
    missing = [folder for folder, count in _folder_counts(splits).items() if count == 0]
    if missing:
        raise ImdbDataError(
            f"{source} does not have the IMDb layout: no reviews under {', '.join(missing)}. "
            "Expected aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt as in the official "
            "aclImdb_v1.tar.gz: check that you pointed at the right file."
        )
    if problem := _count_problem(splits):
        raise ImdbDataError(
            f"{source} is not the complete IMDb dataset ({problem}): it is damaged or "
            f"incomplete. Download it again or point {ARCHIVE_ENV} at a complete copy."
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

    with _writing_into_data_dir(target.parent, "the downloaded archive"):
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
    is renamed at the end, so a failure (or a damaged archive) leaves no half-extracted tree.

    An existing ``target/aclImdb`` is replaced only if this function made it (it holds the
    marker file ``.bertedu-extracted``); any other folder there may hold the user's own
    files, so it is an error that names it, and nothing is deleted.
    """
    target = Path(target).expanduser().absolute()
    final = check_extraction_target(target)
    with _writing_into_data_dir(target, "the extracted dataset", "Extract into a folder you can write to."):
        target.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target, prefix=".extracting-"))
    try:
        root = staging.resolve()

        def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
            _refuse_escape(member, root)
            return tarfile.data_filter(member, path)

        with _verified_tar(archive) as tar:
            tar.extractall(staging, filter=safe)
        if not (staging / "aclImdb").is_dir():
            raise ImdbDataError(f"{archive} holds no aclImdb/ folder: it is not the IMDb archive.")
        write_text(staging / "aclImdb" / EXTRACTED_MARKER, f"extracted by bertedu from {archive}\n")
        check_extraction_target(target)  # again: it may have appeared while we extracted
        if final.exists():
            os.replace(final, staging / "previous")  # out of the way first, deleted below
        os.replace(staging / "aclImdb", final)
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_extraction_target(target: Path) -> Path:
    """``target/aclImdb``, after checking that extracting there deletes none of the user's files."""
    folder = Path(target).expanduser().absolute() / "aclImdb"
    if folder.is_symlink() or (folder.exists() and not (folder / EXTRACTED_MARKER).is_file()):
        raise ImdbDataError(
            f"{folder} already exists and was not extracted by bertedu: it may hold your own "
            "files, so it is left alone. Move or delete it yourself, or extract somewhere else."
        )
    return folder


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

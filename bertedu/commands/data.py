"""``bertedu data``: fetch or verify the IMDb dataset and print its split counts."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from bertedu.data import (
    ARCHIVE_ENV,
    KNOWN_ARCHIVES,
    SPLITS,
    cache_path,
    check_extraction_target,
    download_archive,
    explicit_source,
    extract_archive,
    file_sha256,
    load_imdb,
)
from bertedu.errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", help=f"archive or aclImdb/ folder (default: ${ARCHIVE_ENV}, cache, download)")
    parser.add_argument("--extract", metavar="DIR", help="also extract the archive into DIR")


def run(args: argparse.Namespace) -> int:
    source = explicit_source(args.archive)
    if args.extract:  # before the long load: never replace the user's own folder
        if source is not None and source.is_dir():
            raise UserError(f"--extract needs an archive, and {source} is already an extracted folder.")
        check_extraction_target(Path(args.extract))
    print(f"Source: {source or 'cache / download'}")
    if source and source.is_file():
        digest = file_sha256(source)
        print(f"sha256: {digest} ({KNOWN_ARCHIVES.get(digest, 'not a known release: layout and counts checked below')})")
    before = _cache_stamp()
    start = time.perf_counter()
    splits = {split: load_imdb(split, archive=args.archive) for split in SPLITS}
    how = "cache verified" if before and _cache_stamp() == before else "parsed from the source, cache written"
    print(f"Loaded {sum(map(len, splits.values())):,} reviews in {time.perf_counter() - start:.2f} s ({how})")
    for split, reviews in splits.items():
        positives = sum(reviews.labels)
        print(f"  {split:5s}: {len(reviews):6,} reviews  ({positives:,} positive, {len(reviews) - positives:,} negative)")
    print(f"Cache: {cache_path()}")
    if args.extract:
        if source is None:
            source = download_archive()
        print(f"Extracted to {extract_archive(source, Path(args.extract))}")
    return 0


def _cache_stamp() -> tuple[int, int] | None:
    """The cache's (inode, mtime): it changes when the cache is rewritten."""
    try:
        stat = cache_path().stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns

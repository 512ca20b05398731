"""Nothing damaged is taken for real, nothing of the user's is deleted, no traceback for a
user's mistake: the data points of issue 10 (damaged archives, invalid caches, --extract over
a user's folder, unusable data folders, unreadable archives, and what `bertedu doctor` says).

Tests run as root here, where a read-only folder is still writable: "permission denied" is
simulated (a file where the folder should be, or a patched ``open`` / ``os.access``).
"""
from __future__ import annotations

import errno
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from bertedu import cli, data, doctor, paths
from bertedu.data import ImdbDataError, load_imdb
from bertedu.errors import UserError

PER_LABEL = 3  # reviews per folder in the tiny archives
TINY = {
    f"aclImdb/{split}/{folder}/{i}_{rating}.txt": f"{folder} {split} review {i}<br />line two".encode()
    for split in ("train", "test") for folder, rating in (("pos", 8), ("neg", 2)) for i in range(PER_LABEL)
}


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def write_tgz(path: Path, tar: bytes) -> Path:
    path.write_bytes(gzip.compress(tar, mtime=0))
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty data folder, no archive in the environment, no network, tiny official counts."""
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("BERTEDU_IMDB_ARCHIVE", raising=False)
    monkeypatch.setenv("BERTEDU_IMDB_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    monkeypatch.setattr(data, "EXPECTED_PER_LABEL", PER_LABEL)
    data._MEMO.clear()
    yield tmp_path
    data._MEMO.clear()


def nothing_cached(tmp_path: Path) -> bool:
    imdb = tmp_path / "data" / "imdb"
    return not imdb.exists() or not any(imdb.iterdir())


# ------------------------------------------------------------------ damaged or incomplete archives


def test_real_archive_with_bytes_overwritten_in_the_middle_is_refused(tmp_path, monkeypatch, imdb_archive, capsys):
    # Four bytes at 80% of the file: gzip still inflates, the tar stream hits a garbled header
    # in train/pos and tarfile stops there without an error (39,907 reviews were cached).
    damaged = bytearray(imdb_archive.read_bytes())
    middle = int(len(damaged) * 0.8)
    damaged[middle:middle + 4] = b"\x00\x11\x22\x33"
    (tmp_path / "damaged.tar.gz").write_bytes(damaged)
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    data._MEMO.clear()
    assert cli.main(["data", "--archive", str(tmp_path / "damaged.tar.gz")]) == 2
    error = capsys.readouterr().err
    assert "truncated or corrupt" in error and "Traceback" not in error
    assert nothing_cached(tmp_path)
    data._MEMO.clear()


def test_tar_stream_stopping_at_a_damaged_header_is_refused(isolated):
    # A valid gzip (its CRC matches) around a tar whose last header is garbled: tarfile stops
    # there silently, after one review of every folder was read.
    tar = bytearray(tar_bytes(TINY))
    last_header = tar.rindex(b"aclImdb/test/neg/2_2.txt")
    tar[last_header + 148:last_header + 156] = b"garbage!"  # its header checksum field
    archive = write_tgz(isolated / "bad-header.tar.gz", bytes(tar))
    with pytest.raises(ImdbDataError, match="damaged header.*more data follows"):
        load_imdb("train", archive=archive)
    assert nothing_cached(isolated)


@pytest.mark.parametrize("damage", ["flip a byte of the gzip CRC", "trailing garbage", "a review missing",
                                    "a review repeated"])
def test_damaged_or_incomplete_archive_is_an_error_and_caches_nothing(isolated, damage):
    files = dict(TINY)
    if damage == "a review missing":
        del files["aclImdb/train/pos/1_8.txt"]
    if damage == "a review repeated":
        files["aclImdb/train/pos/1_9.txt"] = b"the same review 1 with another rating"
        del files["aclImdb/train/pos/2_8.txt"]
    payload = gzip.compress(tar_bytes(files), mtime=0)
    if damage == "flip a byte of the gzip CRC":
        payload = payload[:-8] + bytes([payload[-8] ^ 0xFF]) + payload[-7:]
    if damage == "trailing garbage":
        payload += b"this is not part of the archive"
    archive = isolated / "damaged.tar.gz"
    archive.write_bytes(payload)
    expected = "truncated or corrupt" if damage in ("flip a byte of the gzip CRC", "trailing garbage") \
        else r"not the complete IMDb dataset.*aclImdb/train/pos/ has 2, expected 3"
    with pytest.raises(ImdbDataError, match=expected):
        load_imdb("train", archive=archive)
    assert nothing_cached(isolated)


def test_complete_archive_in_every_compression_is_read(isolated):
    tar = tar_bytes(TINY)
    import bz2
    import lzma

    for name, payload in [("a.tar", tar), ("a.tar.gz", gzip.compress(tar)), ("a.tar.bz2", bz2.compress(tar)),
                          ("a.tar.xz", lzma.compress(tar))]:
        (isolated / name).write_bytes(payload)
        data._MEMO.clear()
        reviews = load_imdb("test", archive=isolated / name)
        assert len(reviews) == 2 * PER_LABEL and reviews[0].text == "neg test review 0\nline two"


# ------------------------------------------------------------------ the parsed cache


def test_cache_edited_with_its_fingerprint_kept_is_rebuilt(isolated, capsys):
    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))
    load_imdb("train", archive=archive)
    cache = data.cache_path()
    cache.write_bytes(cache.read_bytes().replace(b"pos train review 0", b"pos train review X"))
    data._MEMO.clear()
    reviews = load_imdb("train", archive=archive)
    assert next(r.text for r in reviews if r.label == 1) == "pos train review 0\nline two"
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "cache" in note[0] and "invalid" in note[0] and "rebuilding" in note[0]
    data._MEMO.clear()
    load_imdb("train", archive=archive)  # the rebuilt cache is valid: no note
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("content", ["[]", '"hello"', "{}", "VERSIONED_DICT_WITHOUT_REVIEWS", "VALID_BUT_EMPTY"])
def test_cache_of_the_wrong_shape_is_rebuilt_from_the_archive(isolated, content, capsys):
    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))
    load_imdb("train", archive=archive)
    cache = data.cache_path()
    if content == "VERSIONED_DICT_WITHOUT_REVIEWS":
        content = json.dumps({"version": data.CACHE_VERSION, "fingerprint": data.fingerprint(archive)})
    if content == "VALID_BUT_EMPTY":  # a right header and checksum around no reviews
        header, _ = cache.read_bytes().split(b"\n", 1)
        body = json.dumps({"train": [], "test": []}).encode()
        import hashlib

        content = json.dumps({**json.loads(header), "sha256": hashlib.sha256(body).hexdigest()}) + "\n" + body.decode()
    cache.write_text(content)
    data._MEMO.clear()
    assert len(load_imdb("train", archive=archive)) == 2 * PER_LABEL
    assert "invalid" in capsys.readouterr().err
    assert data.cache_problem() is None  # rebuilt


def test_invalid_cache_without_a_source_is_a_clear_error(isolated):
    data.cache_path().parent.mkdir(parents=True)
    data.cache_path().write_text("[]")
    with pytest.raises(ImdbDataError, match=r"cache .* is invalid .* no source to rebuild it from.*BERTEDU_IMDB_ARCHIVE"):
        load_imdb("train")


# ------------------------------------------------------------------ bertedu doctor on bad data


def test_doctor_reports_an_empty_archive_and_an_invalid_cache(isolated, monkeypatch):
    empty = isolated / "empty.tar.gz"
    empty.write_bytes(b"")
    monkeypatch.setenv("BERTEDU_IMDB_ARCHIVE", str(empty))
    check = doctor.data_check()
    assert not check.ok and "empty file (0 bytes)" in check.detail

    monkeypatch.delenv("BERTEDU_IMDB_ARCHIVE")
    data.cache_path().parent.mkdir(parents=True)
    data.cache_path().write_text("[]")
    check = doctor.data_check()
    assert not check.ok and "invalid" in check.detail and "bertedu data" in check.fix

    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))
    load_imdb("train", archive=archive)  # rebuilds the cache
    assert doctor.data_check().ok


# ------------------------------------------------------------------ --extract and the user's files


def test_extract_never_replaces_a_folder_it_did_not_make(isolated, capsys):
    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))
    target = isolated / "mine"
    (target / "aclImdb").mkdir(parents=True)
    (target / "aclImdb" / "thesis.txt").write_text("my own notes")
    with pytest.raises(ImdbDataError, match=r"mine/aclImdb already exists and was not extracted by bertedu"):
        data.extract_archive(archive, target)
    assert (target / "aclImdb" / "thesis.txt").read_text() == "my own notes"
    assert sorted(p.name for p in target.iterdir()) == ["aclImdb"]  # no staging left behind

    assert cli.main(["data", "--archive", str(archive), "--extract", str(target)]) == 2
    assert "not extracted by bertedu" in capsys.readouterr().err
    assert (target / "aclImdb" / "thesis.txt").is_file()


def test_extract_replaces_its_own_previous_extraction(isolated):
    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))
    first = data.extract_archive(archive, isolated / "out")
    (first / "train" / "pos" / "0_8.txt").write_text("edited")
    second = data.extract_archive(archive, isolated / "out")
    assert second == first and (second / data.EXTRACTED_MARKER).is_file()
    assert (second / "train" / "pos" / "0_8.txt").read_text() == "pos train review 0<br />line two"
    assert sorted(p.name for p in (isolated / "out").iterdir()) == ["aclImdb"]


def test_extract_of_a_damaged_archive_leaves_nothing(isolated):
    tar = bytearray(tar_bytes(TINY))
    last_header = tar.rindex(b"aclImdb/test/neg/2_2.txt")
    tar[last_header + 148:last_header + 156] = b"garbage!"
    archive = write_tgz(isolated / "bad.tar.gz", bytes(tar))
    with pytest.raises(ImdbDataError, match="truncated or corrupt"):
        data.extract_archive(archive, isolated / "out")
    assert list((isolated / "out").iterdir()) == []


# ------------------------------------------------------------------ unusable data folder, unreadable archive


def test_data_folder_that_cannot_be_created_is_one_clear_line(isolated, monkeypatch, capsys):
    blocker = isolated / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(blocker))
    with pytest.raises(UserError, match=r"a-file cannot be created \(a file is in the way\).*Set BERTEDU_DATA_DIR"):
        paths.data_dir()
    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))
    assert cli.main(["data", "--archive", str(archive)]) == 2
    err = capsys.readouterr().err
    assert "BERTEDU_DATA_DIR" in err and len(err.strip().splitlines()) == 1


def test_doctor_reports_an_unusable_data_folder_instead_of_crashing(isolated, monkeypatch, capsys):
    blocker = isolated / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(blocker))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("MISSING") and "data folder" in line and "cannot be created" in line
               for line in out.splitlines())
    assert "Not ready" in out


def test_read_only_data_folder_is_one_clear_line(isolated, monkeypatch):
    # Simulated: root can write into a read-only folder, so make the write fail as it would.
    archive = write_tgz(isolated / "tiny.tar.gz", tar_bytes(TINY))

    def denied(path, write):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(data, "atomic_write", denied)
    with pytest.raises(UserError, match=r"Cannot write the IMDb cache into .*Permission denied.*Set BERTEDU_DATA_DIR"):
        load_imdb("train", archive=archive)

    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)
    check = doctor.data_folder_check()
    assert not check.ok and "not writable" in check.detail


@pytest.mark.parametrize("kind", ["permission denied", "empty file", "empty folder"])
def test_unreadable_archive_is_one_clear_line(isolated, monkeypatch, kind):
    source = isolated / "source"
    if kind == "empty folder":
        source.mkdir()
    else:
        source.write_bytes(b"" if kind == "empty file" else gzip.compress(tar_bytes(TINY)))
    if kind == "permission denied":  # simulated (root reads anything)
        real_open = open

        def guarded_open(path, *args, **kwargs):
            if Path(path) == source:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(data, "open", guarded_open, raising=False)
    expected = {"permission denied": r"cannot be read \(Permission denied\)",
                "empty file": r"is an empty file \(0 bytes\)",
                "empty folder": r"is a folder without aclImdb/train/neg/"}[kind]
    with pytest.raises(UserError, match=expected):
        load_imdb("train", archive=source)
    assert nothing_cached(isolated)

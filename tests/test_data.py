"""bertedu.data on the real archive, and on every kind of bad input."""
from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from bertedu import data
from bertedu.data import ImdbDataError, load_imdb, train_validation_split


# ------------------------------------------------------------------ the real archive


@pytest.fixture(scope="module")
def train(imdb_archive):
    return load_imdb("train")


@pytest.fixture(scope="module")
def test_split(imdb_archive):
    return load_imdb("test")


def test_splits_have_25k_balanced_reviews(train, test_split):
    for reviews in (train, test_split):
        assert len(reviews) == 25_000
        assert sum(reviews.labels) == 12_500


def test_labels_match_folder_ratings(train, test_split):
    # The dataset's definition: negative <= 4 stars, positive >= 7, neutral reviews left out.
    for reviews in (train, test_split):
        assert all(r.rating <= 4 for r in reviews if r.label == 0)
        assert all(r.rating >= 7 for r in reviews if r.label == 1)
        assert {r.rating for r in reviews} == {1, 2, 3, 4, 7, 8, 9, 10}


def test_the_first_training_review_is_the_known_one(train):
    first_positive = next(r for r in train if r.label == 1)
    assert (first_positive.review_id, first_positive.rating) == (0, 9)
    assert first_positive.text.startswith("Bromwell High is a cartoon comedy.")


def test_cleaning_removes_every_br_tag(train):
    assert not any("<br" in r.text.lower() for r in train)
    raw = load_imdb("train", clean=False)
    assert sum("<br" in r.text for r in raw) > 10_000  # the raw text really has them
    assert data.clean_review("Great.<br /><br />Really<BR>great ") == "Great.\n\nReally\ngreat"


def test_subsample_is_balanced_and_deterministic(train):
    a = load_imdb("train", n=1001, seed=3)
    b = load_imdb("train", n=1001, seed=3)
    c = load_imdb("train", n=1001, seed=4)
    assert [r.review_id for r in a] == [r.review_id for r in b]
    assert [r.review_id for r in a] != [r.review_id for r in c]
    assert len(a) == 1001 and sum(a.labels) == 501
    assert sum(a[:100].labels) not in (0, 100)  # shuffled, not sorted by label
    with pytest.raises(ValueError, match="balanced subsample"):
        load_imdb("train", n=30_000)


def test_validation_is_carved_from_train(train):
    fit, validation = train_validation_split(train, 2_000, seed=0)
    keys = lambda rs: {(r.label, r.review_id) for r in rs}  # noqa: E731
    assert len(validation) == 2_000 and sum(validation.labels) == 1_000
    assert len(fit) == 23_000
    assert not keys(fit) & keys(validation)
    assert keys(fit) | keys(validation) == keys(train)


def test_unknown_split_says_what_exists():
    with pytest.raises(ValueError, match="train and test"):
        load_imdb("validation")


def test_second_load_comes_from_the_cache(imdb_archive, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path))
    data._MEMO.clear()
    first = load_imdb("test", archive=imdb_archive)
    assert data.cache_path().is_file()

    def parsing_is_not_allowed(source):
        raise AssertionError("parsed again despite the cache")

    monkeypatch.setattr(data, "parse_source", parsing_is_not_allowed)
    data._MEMO.clear()
    assert load_imdb("test", archive=imdb_archive) == first
    data._MEMO.clear()


# ------------------------------------------------------------------ synthetic archives


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


TINY = {
    f"aclImdb/{split}/{folder}/{i}_{rating}.txt": f"{folder} review {i}<br />line two".encode()
    for split in ("train", "test") for folder, rating in (("pos", 8), ("neg", 2)) for i in range(3)
}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty data folder and no archive in the environment."""
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("BERTEDU_IMDB_ARCHIVE", raising=False)
    monkeypatch.setattr(data, "EXPECTED_PER_LABEL", 3)  # the tiny archives' count
    data._MEMO.clear()
    yield tmp_path
    data._MEMO.clear()


def cache_folder_is_clean(tmp_path: Path) -> bool:
    imdb = tmp_path / "data" / "imdb"
    return not imdb.exists() or not any(imdb.iterdir())


def test_tiny_archive_and_extracted_folder_give_the_same_reviews(isolated):
    archive = make_archive(isolated / "tiny.tar.gz", TINY)
    from_archive = load_imdb("train", archive=archive)
    assert len(from_archive) == 6 and from_archive[0].text == "neg review 0\nline two"
    folder = data.extract_archive(archive, isolated / "extracted")
    data._MEMO.clear()
    assert load_imdb("train", archive=folder) == from_archive
    data._MEMO.clear()
    assert load_imdb("train", archive=folder.parent) == from_archive


def test_truncated_archive_is_a_clear_error_and_caches_nothing(isolated, imdb_archive):
    truncated = isolated / "truncated.tar.gz"
    truncated.write_bytes(imdb_archive.read_bytes()[:2_000_000])
    with pytest.raises(ImdbDataError, match="truncated or corrupt.*download it again"):
        load_imdb("train", archive=truncated)
    assert cache_folder_is_clean(isolated)


def test_garbage_archive_is_a_clear_error(isolated):
    garbage = isolated / "garbage.tar.gz"
    garbage.write_bytes(b"this is not an archive at all" * 100)
    with pytest.raises(ImdbDataError, match="not a tar archive"):
        load_imdb("train", archive=garbage)
    assert cache_folder_is_clean(isolated)


def test_archive_without_the_layout_names_what_is_missing(isolated):
    wrong = make_archive(isolated / "wrong.tar.gz", {"reviews/good/1.txt": b"hi"})
    with pytest.raises(ImdbDataError, match=r"layout.*aclImdb/train/neg/"):
        load_imdb("train", archive=wrong)
    assert cache_folder_is_clean(isolated)


def test_non_utf8_review_names_the_file(isolated):
    bad = make_archive(isolated / "latin1.tar.gz", {**TINY, "aclImdb/train/pos/7_9.txt": "caf\xe9".encode("latin-1")})
    with pytest.raises(ImdbDataError, match=r"aclImdb/train/pos/7_9.txt .* not valid UTF-8"):
        load_imdb("train", archive=bad)


def test_missing_source_says_how_to_fix(isolated):
    with pytest.raises(ImdbDataError, match="does not exist"):
        load_imdb("train", archive=isolated / "nowhere.tar.gz")


def test_download_verifies_checksum_and_keeps_nothing_bad(isolated, monkeypatch):
    archive = make_archive(isolated / "mirror.tar.gz", TINY)
    monkeypatch.setenv("BERTEDU_IMDB_URL", archive.as_uri())
    monkeypatch.setenv("BERTEDU_IMDB_SHA256", "0" * 64)
    with pytest.raises(ImdbDataError, match="sha256"):
        load_imdb("train")
    assert cache_folder_is_clean(isolated)

    monkeypatch.setenv("BERTEDU_IMDB_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    assert len(load_imdb("test")) == 6  # downloaded, verified, parsed, cached
    assert (isolated / "data" / "imdb" / "aclImdb_v1.tar.gz").is_file()


def test_unreachable_download_says_how_to_work_offline(isolated, monkeypatch):
    monkeypatch.setenv("BERTEDU_IMDB_URL", "http://127.0.0.1:9/aclImdb_v1.tar.gz")
    with pytest.raises(ImdbDataError, match="BERTEDU_IMDB_ARCHIVE"):
        load_imdb("train")
    assert cache_folder_is_clean(isolated)


def test_damaged_cache_is_rebuilt_not_trusted(isolated):
    archive = make_archive(isolated / "tiny.tar.gz", TINY)
    load_imdb("train", archive=archive)
    data.cache_path().write_bytes(b"{not json")
    data._MEMO.clear()
    assert len(load_imdb("train", archive=archive)) == 6


@pytest.mark.parametrize("name", ["../escape.txt", "/tmp/absolute-escape.txt", "aclImdb/../../escape.txt"])
def test_extraction_refuses_paths_outside_the_target(isolated, name):
    evil = make_archive(isolated / "evil.tar.gz", {**TINY, name: b"gotcha"})
    target = isolated / "out"
    with pytest.raises(ImdbDataError, match="outside"):
        data.extract_archive(evil, target)
    assert not (isolated / "escape.txt").exists()
    assert not (target / "aclImdb").exists()


def test_extraction_refuses_links_pointing_outside(isolated):
    path = isolated / "link.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("aclImdb/train/pos/link.txt")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        tar.addfile(link)
    with pytest.raises(ImdbDataError, match="outside"):
        data.extract_archive(path, isolated / "out")

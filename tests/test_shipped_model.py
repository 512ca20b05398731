"""The small BERT that ships with the package: present, intact, loadable, and what it can do."""
from __future__ import annotations

import shutil

import pytest

import bertedu.pretraining as pretraining
from bertedu.errors import UserError
from bertedu.pretraining import BertForPreTraining, shipped_small_bert

FILES = ("config.json", "model.safetensors", "vocab.txt")


@pytest.fixture
def copy_of_shipped(tmp_path, monkeypatch):
    folder = tmp_path / "small-bert"
    shutil.copytree(shipped_small_bert(), folder)
    monkeypatch.setattr(pretraining, "SHIPPED_DIR", folder)
    return folder


def test_shipped_folder_is_complete_small_and_offline():
    folder = shipped_small_bert()
    assert {p.name for p in folder.iterdir()} >= {*FILES, "MODEL_CARD.md", "SHA256SUMS", "history.json"}
    assert (folder / "model.safetensors").stat().st_size <= 15 * 1024 * 1024
    card = (folder / "MODEL_CARD.md").read_text()
    for field in ("command", "commit", "hardware", "training time", "steps", "MLM accuracy", "NSP accuracy"):
        assert field in card


def test_shipped_model_loads_with_its_vocabulary():
    from bertedu.tokenization import load_fast_tokenizer

    folder = shipped_small_bert()
    model = BertForPreTraining.from_pretrained(folder)
    tokenizer = load_fast_tokenizer(folder)
    assert model.config.vocab_size == len(tokenizer) == 8000
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert not model.training


@pytest.mark.parametrize("name", FILES)
def test_a_missing_file_is_a_clear_error(copy_of_shipped, name):
    (copy_of_shipped / name).unlink()
    with pytest.raises(UserError, match=rf"missing .*{name}.*git checkout -- bertedu/resources/small-bert"):
        shipped_small_bert()


def test_a_damaged_file_is_a_clear_error(copy_of_shipped):
    weights = copy_of_shipped / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"damaged: .*model\.safetensors does not match its checksum"):
        shipped_small_bert()


def test_missing_checksums_is_a_clear_error(copy_of_shipped):
    (copy_of_shipped / "SHA256SUMS").unlink()
    with pytest.raises(UserError, match="The shipped small BERT is missing"):
        shipped_small_bert()


def test_the_errors_are_one_line(copy_of_shipped):
    (copy_of_shipped / "vocab.txt").unlink()
    with pytest.raises(UserError) as error:
        shipped_small_bert()
    assert "\n" not in str(error.value) and str(copy_of_shipped / "vocab.txt") in str(error.value)

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


ADJECTIVES = {"good", "great", "bad", "terrible", "awful", "excellent", "boring", "funny", "horrible", "amazing",
              "fantastic", "brilliant", "wonderful", "okay", "ok", "fine", "interesting", "decent", "hilarious",
              "poor", "worse", "better", "best", "worst", "stupid", "entertaining", "enjoyable", "disappointing",
              "beautiful", "perfect", "excellent", "awesome", "weak", "dull", "predictable", "superb", "nice",
              "pathetic", "ridiculous", "silly", "lame", "cheesy", "mediocre", "average", "pointless", "sad"}


def test_shipped_model_meets_chapter4_bars(imdb_archive):
    """Chapter 4's bars: held-out MLM accuracy >= 35%, the original word in the top 5 for >= 50% of
    the test-review probe, and adjectives for "this movie was [MASK] ."."""
    import json

    from bertedu.pretraining import fill_mask, masked_word_probe, probe_accuracy
    from bertedu.tokenization import load_fast_tokenizer

    folder = shipped_small_bert()
    model = BertForPreTraining.from_pretrained(folder)
    tokenizer = load_fast_tokenizer(folder)
    held_out = json.loads((folder / "history.json").read_text())["evals"][-1]
    probe = probe_accuracy(model, masked_word_probe(tokenizer))
    guesses = [token for token, _ in fill_mask(model, tokenizer, "this movie was [MASK] .")[0]]
    assert probe["n"] >= 300
    assert held_out["mlm_accuracy"] >= 0.35
    assert probe["top5"] >= 0.50
    assert sum(token in ADJECTIVES for token in guesses) >= 3, guesses


def test_small_bert_mismatch_names_what_differs(tmp_path):
    import json

    from bertedu.pretraining import small_bert_mismatch

    shipped = shipped_small_bert()
    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    assert small_bert_mismatch(shipped, copy) is None
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 4}))
    assert small_bert_mismatch(shipped, copy).endswith("differ in architecture (config.json)")
    (copy / "vocab.txt").write_text((shipped / "vocab.txt").read_text() + "extra\n")
    assert small_bert_mismatch(copy, shipped).endswith(
        "differ in architecture (config.json) and vocabulary (vocab.txt)")

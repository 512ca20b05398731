"""bertedu.tokenization against the transformers BERT tokenizer on the checkpoint's vocab.txt."""
from __future__ import annotations

import pytest
import torch

from bertedu.checkpoint import default_checkpoint
from bertedu.tokenization import (
    SPECIAL_TOKENS,
    BertTokenizer,
    basic_tokenize,
    load_fast_tokenizer,
    load_vocab,
    train_wordpiece_vocab,
    truncate_pair,
    wordpiece,
)

N_AGREEMENT = 2_000


@pytest.fixture(scope="module")
def ours() -> BertTokenizer:
    return BertTokenizer.from_pretrained(default_checkpoint())


@pytest.fixture(scope="module")
def fast():
    return load_fast_tokenizer(default_checkpoint() / "vocab.txt")


def test_identical_ids_on_2000_imdb_reviews(imdb_archive, ours, fast):
    from bertedu.data import load_imdb

    texts = load_imdb("test", n=N_AGREEMENT, seed=11).texts
    no_limit = 10**9  # compare whole reviews, before any truncation
    reference = fast(texts, verbose=False)["input_ids"]
    mismatches = [i for i, text in enumerate(texts)
                  if ours.encode(text, max_length=no_limit)["input_ids"] != reference[i]]
    assert len(texts) == N_AGREEMENT
    assert mismatches == [], f"{len(mismatches)} of {N_AGREEMENT} reviews differ, first: {texts[mismatches[0]][:200]!r}"


TRICKY = [
    "Été, café, naïve: crème brûlée!",  # accents are stripped
    "Ｆｕｌｌｗｉｄｔｈ ＴＥＸＴ and ﬁ ligatures",
    "中文电影 很好看 and 日本語",  # CJK ideographs become single words
    "tab\there\u00a0nbsp\u2003em-space\u200bzero-width\x07bell\ufffdreplacement",
    "A [MASK] in the text, a[SEP]b, and [mask] in lower case",
    "İstanbul ß Straße ΑΘΗΝΑ Ωmega",
    "emoji 🎬🍿 and symbols © ™ ± ½ $$$ ^_^ ~~~",
    "x" * 101 + " supercalifragilisticexpialidocious",
    "don't!!! ... (really?) \"quoted\" <br /> 10/10",
    "",
]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_match_the_reference(ours, fast, text):
    assert ours.encode(text)["input_ids"] == fast(text)["input_ids"]


def test_batches_with_pairs_truncation_and_padding_match(imdb_archive, ours, fast):
    from bertedu.data import load_imdb

    texts = load_imdb("train", n=40, seed=5).texts
    firsts, seconds = texts[:20], texts[20:]
    for max_length in (16, 33, 128):
        expected = fast(firsts, seconds, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        got = ours(firsts, seconds, max_length=max_length)
        for name in ("input_ids", "token_type_ids", "attention_mask"):
            assert torch.equal(got[name], expected[name]), (max_length, name)
    singles = ours(texts[:5])  # default max_length: BERT's 512 positions
    expected = fast(texts[:5], truncation=True, padding=True, return_tensors="pt")
    assert singles["input_ids"].shape[1] <= 512
    assert all(torch.equal(singles[k], expected[k]) for k in singles)


def test_special_tokens_types_and_mask(ours):
    batch = ours(["a good film"], ["bad"], padding="max_length", max_length=10)
    tokens = ours.convert_ids_to_tokens(batch["input_ids"][0])
    assert tokens == ["[CLS]", "a", "good", "film", "[SEP]", "bad", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert batch["attention_mask"][0].tolist() == [1] * 7 + [0] * 3
    assert (ours.pad_token_id, ours.unk_token_id, ours.cls_token_id, ours.sep_token_id, ours.mask_token_id) == (
        0, 100, 101, 102, 103)


def test_basic_tokenize_and_wordpiece_by_hand():
    assert basic_tokenize("Don't   SHOUT!\nCafé") == ["don", "'", "t", "shout", "!", "cafe"]
    vocab = {"un", "##aff", "##able", "##a", "a", "[UNK]"}
    assert wordpiece("unaffable", vocab) == ["un", "##aff", "##able"]
    assert wordpiece("aaa", vocab) == ["a", "##a", "##a"]
    assert wordpiece("unx", vocab) == ["[UNK]"]  # no piece for "x": the whole word is unknown
    assert wordpiece("a" * 101, vocab) == ["[UNK]"]


def test_truncate_pair_keeps_half_for_the_shorter():
    a, b = list(range(20)), list(range(100, 103))
    assert truncate_pair(a, b, 7) == (a[:4], b)
    assert truncate_pair(b, a, 7) == (b, a[:4])
    assert truncate_pair(a, a, 7) == (a[:3], a[:4])
    assert truncate_pair(a, b, 30) == (a, b)


def test_decode_round_trip(ours):
    ids = ours.encode("The cinematography was breathtaking.")["input_ids"]
    assert ours.decode(ids) == "the cinematography was breathtaking ."


def test_missing_vocab_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"pass a vocab\.txt file or a folder"):
        load_fast_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("hello\nworld\n")
    with pytest.raises(ValueError, match="lacks the special token"):
        BertTokenizer.from_pretrained(tmp_path)


def test_train_wordpiece_vocab(imdb_archive, tmp_path):
    from bertedu.data import load_imdb

    texts = load_imdb("train", n=1000, seed=2).texts
    path = train_wordpiece_vocab(texts, 2000, tmp_path / "a")
    again = train_wordpiece_vocab(texts, 2000, tmp_path / "b")
    assert path == tmp_path / "a" / "vocab.txt"
    vocab = load_vocab(path)
    # The library breaks ties between equally frequent merges arbitrarily: two trainings
    # agree on all but (at most) a few rare tokens, and sorted ids keep equal sets equal.
    assert len(vocab.keys() ^ load_vocab(again).keys()) <= 20
    assert list(vocab) == sorted(vocab, key=lambda t: (t not in SPECIAL_TOKENS, SPECIAL_TOKENS.index(t)
                                                       if t in SPECIAL_TOKENS else 0, t))
    assert list(vocab)[:5] == list(SPECIAL_TOKENS)  # [PAD]=0 ... [MASK]=4
    assert 1900 <= len(vocab) <= 2000
    assert all(token == token.lower() for token in vocab if token not in SPECIAL_TOKENS)
    # It tokenizes unseen reviews with almost no [UNK] and in fewer pieces than characters.
    tokenizer = load_fast_tokenizer(tmp_path / "a")
    held_out = load_imdb("test", n=100, seed=2).texts
    ids = [i for row in tokenizer(held_out)["input_ids"] for i in row]
    assert ids.count(vocab["[UNK]"]) / len(ids) < 0.005
    assert len(ids) < sum(map(len, held_out)) / 3


def test_imdb_vocab_is_trained_once_then_cached(tmp_path, monkeypatch):
    import bertedu.data
    from bertedu.tokenization import imdb_wordpiece_vocab

    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path))
    reviews = ["a small corpus of movie reviews", "the movie was good", "the plot was bad"] * 20

    class FakeReviews:
        texts = reviews

    monkeypatch.setattr(bertedu.data, "load_imdb", lambda split: FakeReviews())
    path = imdb_wordpiece_vocab(vocab_size=60)
    assert path == tmp_path / "tokenizers" / "imdb-wordpiece-60" / "vocab.txt"
    assert "movie" in load_vocab(path)

    def must_not_train(split):
        raise AssertionError("the cached vocabulary should be reused")

    monkeypatch.setattr(bertedu.data, "load_imdb", must_not_train)
    assert imdb_wordpiece_vocab(vocab_size=60) == path

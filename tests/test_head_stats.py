"""Head statistics: known answers on hand-made attention, padding-proof, and equal to transformers'."""
from __future__ import annotations

import math
import os

import pytest
import torch

from bertedu.head_stats import (
    STATISTICS,
    attention_statistics,
    batch_statistics,
    collect_head_statistics,
    pool_statistics,
    sentence_pairs,
    word_ids,
)

TOKENS = ["[CLS]", "the", "play", "##ing", ",", "good", "[SEP]"]


def test_word_ids_join_pieces():
    assert word_ids(TOKENS) == [0, 1, 2, 2, 3, 4, 5]


def one_layer(probs):
    """(T, T) -> the tuple of one layer (1, 1, T, T) a model would return."""
    return (probs[None, None],)


def test_previous_token_head():
    T = len(TOKENS)
    probs = torch.zeros(T, T)
    probs[0, 0] = 1.0
    for i in range(1, T):
        probs[i, i - 1] = 1.0
    stats = attention_statistics(one_layer(probs), [TOKENS])
    assert stats["previous"].item() == pytest.approx(1.0)  # every query 1..T-1 looks back
    assert stats["next"].item() == pytest.approx(0.0)
    assert stats["entropy"].item() == pytest.approx(0.0, abs=1e-6)
    assert stats["[CLS]"].item() == pytest.approx(2 / T)  # [CLS] itself and "the" look at [CLS]
    assert stats["punctuation"].item() == pytest.approx(1 / T)  # "good" looks at ","
    assert stats["same word"].item() == pytest.approx(0.5)  # "##ing" -> "play" yes, "play" -> "##ing" no


def test_uniform_head():
    T = len(TOKENS)
    stats = attention_statistics(one_layer(torch.full((T, T), 1 / T)), [TOKENS])
    assert stats["entropy"].item() == pytest.approx(math.log(T))
    assert stats["[SEP]"].item() == pytest.approx(1 / T)
    assert stats["same word"].item() == pytest.approx(1 / T)


def test_a_padded_batch_gives_the_statistics_of_its_sentences():
    g = torch.Generator().manual_seed(0)
    short = ["[CLS]", "bad", "!", "[SEP]"]
    probs = torch.randn(2, 3, 4, 7, 7, generator=g)  # (B, L, nh, T, T)
    probs[1, ..., len(short):] = -torch.inf  # padded keys of the short sentence
    probs = probs.softmax(-1)
    probs[1, ..., len(short):, :] = 0.3  # garbage rows for padded queries must not count
    together = pool_statistics([batch_statistics(probs, [TOKENS, short])], 2)
    alone = [batch_statistics(probs[:1], [TOKENS]),
             batch_statistics(probs[1:, ..., :4, :4], [short])]
    separately = pool_statistics(alone, 2)
    assert together.n_tokens == len(TOKENS) + len(short)
    for name in STATISTICS:
        torch.testing.assert_close(together[name], separately[name])


def test_sentence_pairs_take_two_sentences():
    pairs = sentence_pairs(["One two three four. Five six seven eight! Nine ten eleven twelve.", "Too short."])
    assert pairs == [("One two three four.", "Five six seven eight!")]


@pytest.fixture(scope="module")
def minilm():
    from bertedu.checkpoint import default_checkpoint
    from bertedu.model import BertModel
    from bertedu.tokenization import load_fast_tokenizer

    folder = default_checkpoint()
    return folder, BertModel.from_pretrained(folder), load_fast_tokenizer(folder)


def test_statistics_match_transformers_on_imdb(minilm):
    transformers = pytest.importorskip("transformers")
    from bertedu.data import load_imdb

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    folder, model, tokenizer = minilm
    reference = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    pairs = sentence_pairs(load_imdb("test", n=24, seed=0).texts)[:12]
    ours = collect_head_statistics(model, tokenizer, pairs, batch_size=5)
    theirs = collect_head_statistics(reference, tokenizer, pairs, batch_size=12)
    assert ours.n_sentences == len(pairs) and ours.n_tokens == theirs.n_tokens
    for name in STATISTICS:
        assert ours[name].shape == (6, 12)
        torch.testing.assert_close(ours[name], theirs[name], atol=1e-5, rtol=0)
    # a real property of this checkpoint: one head of the first layer looks at the previous token
    layer, head, share = ours.best_head("previous")
    assert share > 0.9 and layer == 0

"""The chapter 1-3 checkers: the reference passes, typical mistakes fail with a helpful message."""
from __future__ import annotations

import math

import pytest
import torch

from bertedu.exercises import ch01, ch02, ch03


def not_done(*args):
    raise NotImplementedError


@pytest.mark.parametrize("check, reference", [
    (ch01.check_wordpiece, ch01.wordpiece),
    (ch01.check_pair_inputs, ch01.pair_inputs),
    (ch01.check_pad_batch, ch01.pad_batch),
    (ch02.check_attention, ch02.attention),
    (ch02.check_split_heads, ch02.split_heads),
    (ch03.check_embed, ch03.embed),
    (ch03.check_encoder_layer, ch03.encoder_layer),
    (ch03.check_count_parameters, ch03.count_parameters),
])
def test_reference_passes_and_stub_is_reported(check, reference, capsys):
    check(reference)
    assert "✓" in capsys.readouterr().out
    check(not_done)  # a stub is not a failure: the notebook keeps running
    assert "not implemented yet" in capsys.readouterr().out


def test_solutions_print_and_unknown_names_fail(capsys):
    ch02.solution("attention")
    assert "def attention(" in capsys.readouterr().out
    with pytest.raises(ValueError, match="there are: embed, encoder_layer, count_parameters"):
        ch03.solution("nope")


def shortest_first(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def test_wordpiece_mistakes():
    with pytest.raises(AssertionError, match=r"(?s)wordpiece\('unaffable'\) returned \['\[UNK\]'\].*try the longest"):
        ch01.check_wordpiece(shortest_first)
    no_prefix = lambda word, vocab: [p.removeprefix("##") for p in ch01.wordpiece(word, vocab)]
    with pytest.raises(AssertionError, match="'##' prefix"):
        ch01.check_wordpiece(no_prefix)


def test_pair_and_padding_mistakes():
    all_zero_types = lambda a, b, cls, sep: (ch01.pair_inputs(a, b, cls, sep)[0], [0] * (len(a) + len(b) + 3))
    with pytest.raises(AssertionError, match="token_type_ids for A=.*B and the last \\[SEP\\] are segment 1"):
        ch01.check_pair_inputs(all_zero_types)
    inverted = lambda seqs, pad: (ch01.pad_batch(seqs, pad)[0], 1 - ch01.pad_batch(seqs, pad)[1])
    with pytest.raises(AssertionError, match=r"attention_mask for .*largest difference is 1 at index \(0, 0\)"):
        ch01.check_pad_batch(inverted)


def test_attention_mistakes():
    def unscaled(q, k, v, mask=None):
        probs = (q @ k.transpose(-2, -1)).softmax(-1)
        return probs @ v, probs

    with pytest.raises(AssertionError, match="divide the scores by sqrt"):
        ch02.check_attention(unscaled)

    def ignores_mask(q, k, v, mask=None):
        return ch02.attention(q, k, v, None)

    with pytest.raises(AssertionError, match=r"(?s)probs with padding.*padded keys \(mask 0\) must get probability 0"):
        ch02.check_attention(ignores_mask)

    def softmax_over_queries(q, k, v, mask=None):
        probs = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).softmax(-2)
        return probs @ v, probs

    with pytest.raises(AssertionError, match="each row of probs should sum to 1"):
        ch02.check_attention(softmax_over_queries)


def test_split_heads_mistakes():
    with pytest.raises(AssertionError, match=r"view as \(B, T, nh, hs\) and then swap"):
        ch02.check_split_heads(lambda x, nh: x.view(x.shape[0], nh, x.shape[1], -1))
    with pytest.raises(AssertionError, match=r"shape \(2, 3, 2, 4\), expected \(2, 2, 3, 4\)"):
        ch02.check_split_heads(lambda x, nh: x.view(x.shape[0], x.shape[1], nh, -1))
    with pytest.raises(AssertionError, match="raised RuntimeError"):
        ch02.check_split_heads(lambda x, nh: x.view(7, -1))


def test_encoder_mistakes():
    def without_positions(ids, types, emb):
        return emb.LayerNorm(emb.word_embeddings(ids) + emb.token_type_embeddings(types))

    with pytest.raises(AssertionError, match="left out the position embeddings"):
        ch03.check_embed(without_positions)

    def pre_ln(x, mask, layer):
        a = layer.attention
        context, _ = a.self(a.output.LayerNorm(x), mask)
        h = x + a.output.dense(context)
        return h + layer.output.dense(torch.nn.functional.gelu(layer.intermediate.dense(layer.output.LayerNorm(h))))

    with pytest.raises(AssertionError, match="that is pre-LN"):
        ch03.check_encoder_layer(pre_ln)

    def no_pooler(config):
        H = config.hidden_size
        return ch03.count_parameters(config) - (H * H + H)

    with pytest.raises(AssertionError, match=r"(?s)count_parameters\(tiny\).*off by \+272.*exactly the pooler"):
        ch03.check_count_parameters(no_pooler)

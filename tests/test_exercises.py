"""The exercise checkers of every chapter: the reference passes, typical mistakes fail with a helpful message."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bertedu.exercises import ch01, ch02, ch03, ch04, ch05


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
    (ch04.check_mlm_loss, ch04.mlm_loss),
    (ch04.check_lr_schedule, ch04.lr_schedule),
    (ch04.check_word_starts, ch04.word_starts),
    (ch04.check_pre_ln_layer, ch04.pre_ln_layer),
    (ch05.check_truncate_head_tail, ch05.truncate_head_tail),
    (ch05.check_macro_f1, ch05.macro_f1),
    (ch05.check_mean_pool, ch05.mean_pool),
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


def test_ch05_solutions_print():
    for name in ch05.SOLUTIONS:
        ch05.solution(name)  # prints; an unknown name would raise
    with pytest.raises(ValueError, match="there are: truncate_head_tail, macro_f1, mean_pool"):
        ch05.solution("nope")


def test_ch05_reference_truncation_agrees_with_the_package():
    from bertedu.finetuning import truncate_head_tail

    for n, body, head in [(20, 8, 3), (20, 8, 0), (20, 8, 8), (5, 8, 3)]:
        pieces = list(range(n))
        assert ch05.truncate_head_tail(pieces, body, head) == truncate_head_tail(pieces, body, head)


def test_mlm_loss_mistakes():
    def everywhere(logits, labels):
        return F.cross_entropy(logits.flatten(0, 1), labels.clamp(min=0).flatten())

    with pytest.raises(AssertionError, match="averages over every position"):
        ch04.check_mlm_loss(everywhere)


def test_truncation_mistakes():
    with pytest.raises(AssertionError, match="that is head-only truncation"):
        ch05.check_truncate_head_tail(lambda pieces, body, head: pieces[:body])
    with pytest.raises(AssertionError, match=r"pieces\[-0:\] is the whole list"):
        ch05.check_truncate_head_tail(lambda p, body, head: p if len(p) <= body else p[:head] + p[-(body - head):])
    with pytest.raises(AssertionError, match="raised TypeError"):
        ch05.check_truncate_head_tail(lambda pieces, body, head: pieces[:"x"])


def test_macro_f1_mistakes():
    accuracy = lambda labels, predictions: sum(a == b for a, b in zip(labels, predictions)) / len(labels)
    with pytest.raises(AssertionError, match="that is the accuracy"):
        ch05.check_macro_f1(accuracy)
    f1_of_positive = lambda labels, predictions: ch05._f1_of(list(labels), list(predictions), 1)
    with pytest.raises(AssertionError, match="F1 of class 1 only"):
        ch05.check_macro_f1(f1_of_positive)


def test_mean_pool_mistakes():
    with pytest.raises(AssertionError, match="averaged over padding positions too"):
        ch05.check_mean_pool(lambda hidden, mask: hidden.mean(dim=1))
    with pytest.raises(AssertionError, match=r"that is the \[CLS\] vector"):
        ch05.check_mean_pool(lambda hidden, mask: hidden[:, 0])
    with pytest.raises(AssertionError, match=r"shape \(3, 6, 8\), expected \(3, 8\)"):
        ch05.check_mean_pool(lambda hidden, mask: hidden * mask.unsqueeze(-1))

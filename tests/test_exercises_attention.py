"""Chapters 2 and 6: the new exercises' reference solutions agree with the package and with
reference libraries, and the checkers catch the typical mistakes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bertedu.exercises import ch02, ch06


@pytest.mark.parametrize("T", [1, 4, 9])
def test_causal_attention_equals_torch_sdpa(T):
    g = torch.Generator().manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 8, generator=g) for _ in range(3))
    context, probs = ch02.causal_attention(q, k, v)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert probs.triu(1).abs().max() == 0


@pytest.mark.parametrize("wrong, message", [
    (lambda q, k, v: ch02.attention(q, k, v), "above the diagonal"),
    (lambda q, k, v: ch02.causal_attention(q.flip(-2), k.flip(-2), v.flip(-2)), "values differ"),
])
def test_causal_checker_catches_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        ch02.check_causal_attention(wrong)


def test_causal_checker_catches_the_transposed_mask():
    def lower(q, k, v):
        T = q.size(-2)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(
            torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf"))
        probs = scores.softmax(-1)
        return probs @ v, probs

    with pytest.raises(AssertionError, match="lower triangle"):
        ch02.check_causal_attention(lower)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_entropy_solution_against_scipy_and_the_package(seed):
    from scipy.stats import entropy

    from bertedu.head_stats import attention_statistics

    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(4, 6, 6, generator=g).mul(3).softmax(-1)  # (nh, T, T)
    probs[0] = torch.eye(6)
    expected = torch.tensor([entropy(probs[h].T.numpy()).mean() for h in range(4)], dtype=torch.float32)
    torch.testing.assert_close(ch06.attention_entropy(probs), expected, atol=1e-5, rtol=0)
    tokens = ["[CLS]", "a", "b", "c", "d", "[SEP]"]
    package = attention_statistics((probs[None],), [tokens])["entropy"][0]  # (nh,)
    torch.testing.assert_close(ch06.attention_entropy(probs), package, atol=1e-5, rtol=0)


def test_entropy_checker_catches_bits_and_nan():
    with pytest.raises(AssertionError, match="bits"):
        ch06.check_attention_entropy(lambda p: ch06.attention_entropy(p) / math.log(2))
    with pytest.raises(AssertionError, match="NaN"):
        ch06.check_attention_entropy(lambda p: -(p * p.log()).sum(-1).mean(-1))


def test_cls_share_against_the_package_on_a_real_model():
    from bertedu.checkpoint import default_checkpoint
    from bertedu.explain import sum_by_word
    from bertedu.model import BertModel
    from bertedu.tokenization import load_fast_tokenizer

    folder = default_checkpoint()
    model, tokenizer = BertModel.from_pretrained(folder), load_fast_tokenizer(folder)
    encoded = tokenizer("Good acting, great music, but a bad and boring plot.", return_tensors="pt")
    with torch.no_grad():
        attentions = model(**encoded, output_attentions=True).attentions
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
    words = {"good", "great", "bad", "boring"}
    for layer, share in enumerate(ch06.cls_share(attentions, tokens, words)):
        names, scores = sum_by_word(tokens, attentions[layer][0, :, 0, :].mean(0))  # the package's word scores
        expected = sum(score for name, score in zip(names, scores.tolist()) if name in words)
        assert share.item() == pytest.approx(expected, abs=1e-6)


def test_cls_share_checker_catches_the_column():
    with pytest.raises(AssertionError, match="column 0"):
        ch06.check_cls_share(lambda a, t, w: torch.stack(
            [layer[0, :, :, 0].mean(0) @ torch.tensor([x in w for x in t], dtype=torch.float32) for layer in a]))


def test_rollout_prediction_checker(capsys):
    class Uniform(torch.nn.Module):
        """Every head attends uniformly: rollout and last layer are both uniform (entropy ties)."""

        def forward(self, input_ids, output_attentions=True):
            T = input_ids.shape[1]
            probs = torch.full((1, 2, T, T), 1 / T)
            return type("Out", (), {"attentions": (probs, probs)})()

    class Tokenizer:
        def __call__(self, text, **kwargs):
            return {"input_ids": torch.zeros(1, len(text.split()), dtype=torch.long)}

    ch06.check_rollout_prediction(None, Uniform(), Tokenizer(), ["a b c"])
    assert "not set yet" in capsys.readouterr().out
    ch06.check_rollout_prediction("less", Uniform(), Tokenizer(), ["a b c"])  # the residual sharpens the rollout
    assert "✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="less spread out"):
        ch06.check_rollout_prediction("more", Uniform(), Tokenizer(), ["a b c"])
    with pytest.raises(AssertionError, match='"more" or "less"'):
        ch06.check_rollout_prediction("maybe", Uniform(), Tokenizer(), ["a b c"])

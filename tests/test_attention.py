"""bertedu.attention: the explicit formula, the padding mask and the two attention paths."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bertedu.attention import MultiHeadSelfAttention, padding_bias, scaled_dot_product_attention


def padded_mask(lengths: list[int], T: int) -> torch.Tensor:
    """(B, T) 0/1 mask with the first lengths[b] positions real."""
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()


def test_padding_bias_shape_and_values():
    bias = padding_bias(torch.tensor([[1, 1, 0]]), torch.float32)
    assert bias.shape == (1, 1, 1, 3)
    assert bias[0, 0, 0, :2].tolist() == [0.0, 0.0]
    assert bias[0, 0, 0, 2].item() == torch.finfo(torch.float32).min
    assert padding_bias(None, torch.float32) is None


def test_explicit_formula_matches_torch_sdpa_and_ignores_padding():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))  # (B, nh, T, hs)
    mask = padded_mask([5, 3], 5)
    bias = padding_bias(mask, q.dtype)
    context, probs = scaled_dot_product_attention(q, k, v, bias)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))
    assert probs.shape == (2, 3, 5, 5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5))
    assert probs[1, :, :, 3:].abs().max() == 0  # padded keys of example 2 get no weight
    # And by hand for one query: softmax(q k^T / sqrt(8)) v.
    weights = torch.softmax(q[0, 0, 0] @ k[0, 0].T / 8**0.5, dim=-1)
    torch.testing.assert_close(context[0, 0, 0], weights @ v[0, 0])


@pytest.fixture
def attention() -> MultiHeadSelfAttention:
    torch.manual_seed(0)
    return MultiHeadSelfAttention(hidden_size=48, num_heads=6, dropout=0.1).eval()


def test_both_paths_agree(attention):
    x = torch.randn(3, 7, 48)
    mask = padded_mask([7, 4, 1], 7)
    with torch.no_grad():
        fused, no_probs = attention(x, mask)
        explicit, probs = attention(x, mask, output_attentions=True)
    assert no_probs is None
    assert fused.shape == explicit.shape == (3, 7, 48)
    assert probs.shape == (3, 6, 7, 7)
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=1e-5)


def test_padding_does_not_change_real_tokens(attention):
    """Appending padding must leave the outputs at the real positions unchanged."""
    x = torch.randn(1, 5, 48)
    padded = torch.cat([x, torch.randn(1, 3, 48)], dim=1)
    with torch.no_grad():
        alone, _ = attention(x)
        with_padding, _ = attention(padded, padded_mask([5], 8))
    torch.testing.assert_close(with_padding[:, :5], alone, atol=1e-6, rtol=1e-5)


def test_split_and_merge_heads_are_inverses(attention):
    x = torch.randn(2, 4, 48)
    heads = attention.split_heads(x)
    assert heads.shape == (2, 6, 4, 8)
    assert torch.equal(heads[0, 1, 2], x[0, 2, 8:16])  # head 1 gets features 8..15
    assert torch.equal(attention.merge_heads(heads), x)


def test_dropout_only_in_training(attention):
    x = torch.randn(2, 6, 48)
    attention.train()
    torch.manual_seed(1)
    a, _ = attention(x)
    b, _ = attention(x)
    _, probs = attention(x, output_attentions=True)
    assert not torch.allclose(a, b)
    assert (probs == 0).any()  # dropped probabilities
    attention.eval()
    assert torch.equal(attention(x)[0], attention(x)[0])


def test_hidden_size_must_split_evenly():
    with pytest.raises(ValueError, match=r"hidden_size \(50\) must be a multiple of num_heads \(6\)"):
        MultiHeadSelfAttention(50, 6)


# -- the pictures (bertedu.viz) ---------------------------------------------------------


def test_viz_gives_bertviz_input_for_both_models_and_draws_offline(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import transformers

    head_view = pytest.importorskip("bertviz").head_view
    pytest.importorskip("ipywidgets")

    from bertedu.checkpoint import default_checkpoint
    from bertedu.model import BertModel
    from bertedu.tokenization import load_fast_tokenizer
    from bertedu.viz import attention_explorer, bertviz_attention, show_attention

    folder = default_checkpoint()
    ours = BertModel.from_pretrained(folder)
    theirs = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    tokenizer = load_fast_tokenizer(folder)
    a = bertviz_attention(ours, tokenizer, "The plot was thin.", "The cast was great.", decimals=None)
    b = bertviz_attention(theirs, tokenizer, "The plot was thin.", "The cast was great.", decimals=None)
    assert a["tokens"][a["sentence_b_start"] - 1] == "[SEP]" and a["tokens"][a["sentence_b_start"]] == "the"
    assert len(a["attention"]) == 6 and a["attention"][0].shape == (1, 12, len(a["tokens"]), len(a["tokens"]))
    assert max((x - y).abs().max() for x, y in zip(a["attention"], b["attention"])) <= 1e-5
    html = head_view(**bertviz_attention(ours, tokenizer, "Short."), html_action="return").data
    assert '"left_text": ["[CLS]", "short", ".", "[SEP]"]' in html
    ax = show_attention(ours, tokenizer, "A fine film.", layer=5, head="mean")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["[CLS]", "a", "fine", "film", ".", "[SEP]"]
    assert len(attention_explorer(ours, tokenizer).children) == 3
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        sdpa = transformers.BertModel.from_pretrained(str(folder)).eval()
        bertviz_attention(sdpa, tokenizer, "x")

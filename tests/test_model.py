"""bertedu.model against the reference: transformers.BertModel on the embedded checkpoint.

Parity is checked on real IMDb reviews of different lengths (so the batch has padding)
and on a sentence pair (so segment embeddings matter), for the hidden states, the pooled
output and every layer's attention probabilities.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from bertedu.checkpoint import default_checkpoint
from bertedu.model import (
    BertConfig,
    BertModel,
    count_for_config,
    init_bert_weights,
    parameter_counts,
)
from bertedu.tokenization import load_fast_tokenizer

TOLERANCE = 1e-5  # max abs difference, float32


@pytest.fixture(scope="module")
def ours() -> BertModel:
    return BertModel.from_pretrained(default_checkpoint())


@pytest.fixture(scope="module")
def reference():
    import transformers

    return transformers.BertModel.from_pretrained(str(default_checkpoint()), attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def tokenizer():
    return load_fast_tokenizer(default_checkpoint())


@pytest.fixture(scope="module")
def review_batch(imdb_archive, tokenizer):
    from bertedu.data import load_imdb

    # Five reviews spread from the shortest to the longest of 200, so lengths differ.
    texts = sorted(load_imdb("test", n=200, seed=3).texts, key=len)[::45]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any(), "the batch should contain padding"
    return batch


@pytest.fixture(scope="module")
def explicit_out(ours, review_batch):
    """Our outputs on the reviews with attentions and hidden states (explicit attention path)."""
    with torch.no_grad():
        return ours(review_batch["input_ids"], review_batch["attention_mask"], review_batch["token_type_ids"],
                    output_attentions=True, output_hidden_states=True)


def max_differences(a, reference, batch) -> dict[str, float]:
    with torch.no_grad():
        b = reference(**batch, output_attentions=True)
    return {
        "last_hidden_state": (a.last_hidden_state - b.last_hidden_state).abs().max().item(),
        "pooler_output": (a.pooler_output - b.pooler_output).abs().max().item(),
        "attentions": max((x - y).abs().max().item() for x, y in zip(a.attentions, b.attentions, strict=True)),
    }


def test_parity_with_transformers_on_padded_imdb_reviews(explicit_out, reference, review_batch):
    diffs = max_differences(explicit_out, reference, review_batch)
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_parity_on_a_sentence_pair(ours, reference, tokenizer):
    batch = tokenizer(["The acting was wooden.", "A joy from start to finish!"],
                      ["I walked out after an hour.", "Bring tissues."], padding=True, return_tensors="pt")
    assert batch["token_type_ids"].sum() > 0
    with torch.no_grad():
        out = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], output_attentions=True)
    diffs = max_differences(out, reference, batch)
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_attention_shapes_and_padding_get_no_weight(ours, explicit_out, review_batch):
    out = explicit_out
    B, T = review_batch["input_ids"].shape
    c = ours.config
    assert out.last_hidden_state.shape == (B, T, c.hidden_size)
    assert out.pooler_output.shape == (B, c.hidden_size)
    assert len(out.attentions) == c.num_hidden_layers
    padded_keys = review_batch["attention_mask"][:, None, None, :] == 0  # (B, 1, 1, T)
    for probs in out.attentions:
        assert probs.shape == (B, c.num_attention_heads, T, T)
        torch.testing.assert_close(probs.sum(-1), torch.ones(B, c.num_attention_heads, T))
        assert probs.masked_select(padded_keys).abs().max() == 0


def test_fused_attention_path_agrees_with_explicit_path_and_with_transformers_sdpa(ours, explicit_out, review_batch):
    import transformers

    with torch.no_grad():
        fused = ours(review_batch["input_ids"], review_batch["attention_mask"], review_batch["token_type_ids"])
        sdpa = transformers.BertModel.from_pretrained(str(default_checkpoint()), attn_implementation="sdpa").eval()
        reference_fused = sdpa(**review_batch)
    assert fused.attentions is None
    # Fused vs explicit: the kernels round differently. At real tokens they agree to 1e-5;
    # the (meaningless) outputs at padded positions may differ a little more.
    real = review_batch["attention_mask"].bool()
    torch.testing.assert_close(fused.last_hidden_state[real], explicit_out.last_hidden_state[real], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(fused.pooler_output, explicit_out.pooler_output, atol=TOLERANCE, rtol=0)
    # Same kernel as transformers' default SDPA attention: same numbers everywhere.
    torch.testing.assert_close(fused.last_hidden_state, reference_fused.last_hidden_state, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(fused.pooler_output, reference_fused.pooler_output, atol=TOLERANCE, rtol=0)


def test_hidden_states_are_the_layer_outputs(ours, explicit_out):
    out = explicit_out
    assert len(out.hidden_states) == ours.config.num_hidden_layers + 1
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def test_dropout_acts_only_in_training_mode():
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64)).train()
    ids = torch.randint(0, 100, (2, 16))
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 10:] = 0
    first = model(ids, mask).last_hidden_state
    second = model(ids, mask).last_hidden_state
    assert not torch.allclose(first, second)
    first.sum().backward()  # gradients flow through the fused path
    assert model.encoder.layer[0].attention.self.query.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(ids, mask).last_hidden_state, model(ids, mask).last_hidden_state)


# -- checkpoints ------------------------------------------------------------------------


def test_saved_checkpoint_loads_in_transformers_and_back(tmp_path, tokenizer):
    import transformers

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=128, max_position_embeddings=64)
    model = BertModel(config).eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    hf = transformers.BertModel.from_pretrained(str(tmp_path), attn_implementation="eager").eval()
    again = BertModel.from_pretrained(tmp_path)
    assert again.config == config
    batch = tokenizer(["short one", "a somewhat longer second review"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(batch["input_ids"], batch["attention_mask"]).last_hidden_state
        torch.testing.assert_close(hf(**batch).last_hidden_state, expected, atol=TOLERANCE, rtol=0)
        torch.testing.assert_close(again(batch["input_ids"], batch["attention_mask"]).last_hidden_state, expected)


def copy_checkpoint(tmp_path, state_dict=None, config_changes=None, weights_name="model.safetensors"):
    """A copy of the default checkpoint, optionally with edited weights or config."""
    source = default_checkpoint()
    folder = tmp_path / "ckpt"
    folder.mkdir()
    config = json.loads((source / "config.json").read_text())
    config.update(config_changes or {})
    (folder / "config.json").write_text(json.dumps(config))
    if state_dict is None:
        shutil.copy(source / "model.safetensors", folder / "model.safetensors")
    elif weights_name.endswith(".bin"):
        torch.save(state_dict, folder / weights_name)
    else:
        save_file(state_dict, str(folder / weights_name))
    return folder


@pytest.fixture(scope="module")
def default_weights() -> dict[str, torch.Tensor]:
    return load_file(default_checkpoint() / "model.safetensors")


def test_loads_prefixed_weights_with_heads_and_old_layernorm_names(tmp_path, default_weights, ours):
    renamed = {}
    for key, value in default_weights.items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed["bert." + key] = value
    renamed["cls.predictions.bias"] = torch.zeros(30522)  # a pre-training head: skipped
    model = BertModel.from_pretrained(copy_checkpoint(tmp_path, renamed, weights_name="pytorch_model.bin"))
    for (name, a), (_, b) in zip(model.state_dict().items(), ours.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_missing_weight_is_named(tmp_path, default_weights):
    weights = {k: v for k, v in default_weights.items() if k != "encoder.layer.3.output.dense.weight"}
    with pytest.raises(ValueError, match=r"1 missing weight\(s\): encoder\.layer\.3\.output\.dense\.weight"):
        BertModel.from_pretrained(copy_checkpoint(tmp_path, weights))


def test_unexpected_weight_is_named(tmp_path, default_weights):
    weights = {**default_weights, "encoder.layer.0.attention.self.rotary.weight": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"unexpected weight\(s\): encoder\.layer\.0\.attention\.self\.rotary"):
        BertModel.from_pretrained(copy_checkpoint(tmp_path, weights))


def test_config_that_does_not_match_the_weights(tmp_path):
    folder = copy_checkpoint(tmp_path, config_changes={"intermediate_size": 1024, "num_hidden_layers": 5})
    with pytest.raises(ValueError) as error:
        BertModel.from_pretrained(folder)
    message = str(error.value)
    assert "encoder.layer.0.intermediate.dense.weight: checkpoint (1536, 384), config expects (1024, 384)" in message
    assert "unexpected weight(s): encoder.layer.5." in message
    assert "num_hidden_layers=5" in message and "the weights have 6 layer(s)" in message


def test_folder_problems_name_the_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"no config\.json.*notes\.txt"):
        BertModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(BertConfig().to_dict()))
    with pytest.raises(FileNotFoundError, match=r"no weights: expected model\.safetensors or pytorch_model\.bin"):
        BertModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="is a file; pass the checkpoint"):
        BertModel.from_pretrained(default_checkpoint() / "model.safetensors")


def test_unsupported_config_values():
    with pytest.raises(ValueError, match="position_embedding_type='relative_key'"):
        BertConfig.from_dict({"position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="must be a multiple of num_attention_heads"):
        BertConfig(hidden_size=100, num_attention_heads=12)
    with pytest.raises(ValueError, match="hidden_act='swish'"):
        BertConfig(hidden_act="swish")


def test_config_round_trip(tmp_path):
    config = BertConfig.from_pretrained(default_checkpoint())
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)
    config.save_pretrained(tmp_path)
    assert BertConfig.from_json_file(tmp_path / "config.json") == config
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "bert"


# -- input errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda: dict(input_ids=torch.tensor([[101, 30522, 102]])),
         r"input_ids\[0, 1\] = 30522 is outside \[0, 30521\] \(vocab_size = 30522\)"),
        (lambda: dict(input_ids=torch.tensor([[101, -1, 102]])), r"input_ids\[0, 1\] = -1 is outside"),
        (lambda: dict(input_ids=torch.ones(1, 513, dtype=torch.long)),
         r"Sequence length 513 exceeds max_position_embeddings=512"),
        (lambda: dict(input_ids=torch.ones(2, 5, dtype=torch.long), attention_mask=torch.ones(2, 4)),
         r"attention_mask has shape \(2, 4\) but input_ids has shape \(2, 5\)"),
        (lambda: dict(input_ids=torch.ones(1, 3, dtype=torch.long), attention_mask=torch.tensor([[1, 2, 0]])),
         r"attention_mask\[0, 1\] = 2 is outside \[0, 1\]"),
        (lambda: dict(input_ids=torch.ones(1, 3, dtype=torch.long), token_type_ids=torch.tensor([[0, 1, 2]])),
         r"token_type_ids\[0, 2\] = 2 is outside \[0, 1\] \(type_vocab_size = 2\)"),
        (lambda: dict(input_ids=torch.tensor([101, 102])), r"must be a \(batch, seq_len\) tensor.*got \(2,\)"),
        (lambda: dict(input_ids=torch.ones(1, 3)), r"integer token ids; got dtype torch\.float32"),
    ],
)
def test_bad_inputs_raise_value_errors_that_say_what_is_wrong(ours, make_inputs, message):
    with pytest.raises(ValueError, match=message):
        ours(**make_inputs())


# -- initialisation and sizes -----------------------------------------------------------


def test_init_bert_weights_statistics():
    torch.manual_seed(0)
    model = BertModel(BertConfig(hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=1024, initializer_range=0.05))
    w = model.encoder.layer[0].intermediate.dense.weight
    assert abs(w.std().item() - 0.05) < 0.002 and abs(w.mean().item()) < 0.002
    assert model.encoder.layer[1].output.dense.bias.abs().max() == 0
    assert torch.equal(model.embeddings.LayerNorm.weight, torch.ones(256))
    assert model.embeddings.word_embeddings.weight[0].abs().max() == 0  # [PAD]
    linear = torch.nn.Linear(500, 500)
    init_bert_weights(linear)  # the default range is BERT's 0.02
    assert abs(linear.weight.std().item() - 0.02) < 0.001


def test_parameter_counts_match_transformers(ours, reference):
    counts = parameter_counts(ours)
    assert counts["total"] == sum(p.numel() for p in reference.parameters()) == 22_713_216
    assert counts.get("other", 0) == 0
    assert counts["token embeddings"] == 30522 * 384
    assert counts["attention Q, K, V"] == 6 * 3 * (384 * 384 + 384)
    base = count_for_config(BertConfig())
    assert base["total"] == 109_482_240  # BERT-base, as published by transformers
    assert base["feed-forward"] == 12 * 2 * 768 * 3072 + 12 * (3072 + 768)


# --------------------------------------------------------------------------- pre-LN (bertedu's option)


def test_pre_layer_norm_layer_is_x_plus_sublayer_of_normalised_x():
    from bertedu.model import BertLayer

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        pre_layer_norm=True)
    torch.manual_seed(0)
    layer = BertLayer(config).eval()
    x = torch.randn(2, 5, 16) * 3
    attention = layer.attention
    ln_a, ln_f = attention.output.LayerNorm, layer.output.LayerNorm
    context, _ = attention.self(ln_a(x), None)
    h = x + attention.output.dense(context)  # no LayerNorm after the sum
    expected = h + layer.output.dense(layer.intermediate(ln_f(h)))
    out, _ = layer(x, None)
    torch.testing.assert_close(out, expected)
    # post-LN (the default) normalises after the sum instead: every position has mean 0
    post = BertLayer(BertConfig(**{**config.__dict__, "pre_layer_norm": False})).eval()
    assert post(x, None)[0].mean(-1).abs().max() < 1e-5 and out.mean(-1).abs().max() > 1e-3


def test_pre_layer_norm_model_saves_loads_and_ends_with_a_layer_norm(tmp_path):
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=12, pre_layer_norm=True)
    torch.manual_seed(0)
    model = BertModel(config).eval()
    ids = torch.randint(5, 50, (2, 7))
    out = model(ids)
    assert out.last_hidden_state.mean(-1).abs().max() < 1e-5  # the final LayerNorm
    model.save_pretrained(tmp_path)
    again = BertModel.from_pretrained(tmp_path)
    assert again.config.pre_layer_norm
    torch.testing.assert_close(again(ids).last_hidden_state, out.last_hidden_state)
    assert "pre_layer_norm" not in BertConfig().to_dict()  # a post-LN config.json stays transformers' BERT

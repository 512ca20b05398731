"""LoRA (bertedu.lora): the same numbers as the `peft` library, merge / unmerge, bad ranks and targets."""
import pytest
import torch
from torch import nn

from bertedu.checkpoint import default_checkpoint
from bertedu.classification import BertForSequenceClassification
from bertedu.errors import UserError
from bertedu.lora import (
    LoRALinear,
    apply_lora,
    lora_layers,
    mark_only_lora_trainable,
    merge_lora,
    unmerge_lora,
)
from bertedu.model import BertConfig, BertModel

TINY = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  max_position_embeddings=32)


def randomise_b(layers, seed=0):
    """B starts at zero (LoRA is the identity at step 0); give it values to see the update."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers:
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)


def inputs(vocab_size, B=2, T=9, seed=0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (B, T), generator=generator)
    attention_mask = torch.ones(B, T, dtype=torch.long)
    attention_mask[1, 6:] = 0  # padding in the second sequence
    return input_ids, attention_mask


def test_lora_linear_is_the_formula_and_starts_as_the_base_layer():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = LoRALinear(base, rank=3, alpha=6, dropout=0.0)
    x = torch.randn(4, 5, 12)
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=0)  # B = 0: exactly the base layer
    randomise_b([layer])
    expected = x @ base.weight.T + base.bias + (6 / 3) * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected)
    assert layer.lora_A.shape == (3, 12) and layer.lora_B.shape == (7, 3)
    assert [p.requires_grad for p in base.parameters()] == [False, False]
    assert torch.linalg.matrix_rank(layer.delta_weight()) == 3


def test_same_trainable_parameters_and_outputs_as_peft():
    """peft's LoraConfig on transformers' BertModel and ours on bertedu's, with the same A and B."""
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    checkpoint = default_checkpoint()
    reference = transformers.BertModel.from_pretrained(checkpoint, attn_implementation="eager")
    reference = peft.get_peft_model(reference, peft.LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"],
                                                               lora_dropout=0.0))
    ours = BertModel.from_pretrained(checkpoint)
    layers = apply_lora(ours, rank=8, alpha=16, target_modules=("query", "value"))
    mark_only_lora_trainable(ours, also=())
    trainable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert trainable(ours) == trainable(reference) == 6 * 2 * 8 * (384 + 384)  # L * 2 projections * r (d_in + d_out)
    randomise_b(layers.values())
    with torch.no_grad():
        for name, layer in layers.items():
            theirs = reference.get_submodule("base_model.model." + name)
            theirs.lora_A["default"].weight.copy_(layer.lora_A)
            theirs.lora_B["default"].weight.copy_(layer.lora_B)
    input_ids, attention_mask = inputs(ours.config.vocab_size, T=12)
    reference.eval(), ours.eval()
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        got = ours(input_ids, attention_mask=attention_mask).last_hidden_state
        plain = BertModel.from_pretrained(checkpoint)(input_ids, attention_mask=attention_mask).last_hidden_state
    assert (got - plain).abs().max() > 1e-2  # the update changes the output...
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # ...exactly as peft's does


def test_merged_model_gives_the_same_logits_and_unmerge_restores_the_weights():
    torch.manual_seed(0)
    model = BertForSequenceClassification(TINY, num_labels=2).eval()
    original = {name: p.clone() for name, p in model.named_parameters()}
    randomise_b(apply_lora(model.bert, rank=4).values())
    input_ids, attention_mask = inputs(TINY.vocab_size)
    with torch.no_grad():
        unmerged = model(input_ids, attention_mask=attention_mask).logits
        merge_lora(model)
        assert all(layer.merged for layer in lora_layers(model))
        merged = model(input_ids, attention_mask=attention_mask).logits
        torch.testing.assert_close(merged, unmerged, rtol=0, atol=1e-5)
        query = model.bert.encoder.layer[0].attention.self.query
        assert (query.base_layer.weight - original["bert.encoder.layer.0.attention.self.query.weight"]).abs().max() > 1e-3
        unmerge_lora(model)
        torch.testing.assert_close(query.base_layer.weight, original["bert.encoder.layer.0.attention.self.query.weight"],
                                   rtol=0, atol=1e-6)
        torch.testing.assert_close(model(input_ids, attention_mask=attention_mask).logits, unmerged, rtol=0, atol=1e-6)


def test_only_the_factors_learn():
    torch.manual_seed(0)
    model = BertForSequenceClassification(TINY, num_labels=2)
    apply_lora(model.bert, rank=2)
    mark_only_lora_trainable(model)
    before = {name: p.clone() for name, p in model.named_parameters()}
    # Adam: every parameter with a non-zero gradient moves by about lr, however small the gradient
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    input_ids, attention_mask = inputs(TINY.vocab_size)
    for _ in range(2):  # two steps: B moves first, then A gets a gradient through B
        model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {name for name in before if ".lora_" in name or name.startswith("classifier.")}


@pytest.mark.parametrize("rank", [0, -1, 17, 2.5])
def test_a_rank_out_of_range_is_refused_and_the_model_is_untouched(rank):
    model = BertModel(TINY)
    with pytest.raises(UserError, match=r"rank .* out of range .* from 1 to 16"):
        apply_lora(model, rank=rank)
    assert not lora_layers(model)


def test_a_target_that_matches_nothing_is_named():
    model = BertModel(TINY)
    with pytest.raises(UserError, match=r"'querry' matches no linear layer.*query.*value"):
        apply_lora(model, rank=2, target_modules=("query", "querry"))
    assert not lora_layers(model)


def test_dotted_targets_match_the_end_of_a_name():
    layers = apply_lora(BertModel(TINY), rank=2, target_modules=("intermediate.dense", "attention.output.dense"))
    assert sorted(layers) == sorted(f"encoder.layer.{i}.{part}" for i in range(2)
                                    for part in ("intermediate.dense", "attention.output.dense"))

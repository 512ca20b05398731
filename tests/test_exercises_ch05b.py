"""Chapter 5b's exercise checkers: the references pass, the typical mistakes get their hint,
and the references agree with the package (bertedu.lora), not only with themselves."""
import pytest
import torch
from torch import nn

from bertedu.exercises import ExerciseError, ch05b
from bertedu.lora import LoRALinear, apply_lora
from bertedu.model import BertConfig, BertModel


@pytest.mark.parametrize("config, rank, targets", ch05b.COUNT_CASES + [
    (BertConfig(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96), 5,
     ("key", "attention.output.dense", "intermediate.dense")),
])
def test_the_reference_count_is_what_apply_lora_adds(config, rank, targets):
    torch.manual_seed(0)
    model = BertModel(config)
    layers = apply_lora(model, rank, target_modules=targets)
    assert ch05b.lora_parameter_count(config, rank, targets) == sum(
        p.numel() for name, p in model.named_parameters() if ".lora_" in name)
    assert len(layers) > 0


def test_the_reference_feed_forward_lora_matches_apply_lora_with_exact_targets():
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=24, max_position_embeddings=16)
    ours, package = BertModel(config), BertModel(config)
    ch05b.lora_on_feed_forward(ours, 3)
    names = [f"encoder.layer.{i}.{part}" for i in range(2) for part in ("intermediate.dense", "output.dense")]
    apply_lora(package, 3, target_modules=names)
    wrapped = lambda m: sorted(n for n, x in m.named_modules() if isinstance(x, LoRALinear))  # noqa: E731
    assert wrapped(ours) == wrapped(package) == sorted(names)


def test_typical_mistakes_get_a_hint():
    one_layer = lambda config, rank, targets: ch05b.lora_parameter_count(config, rank, targets) // config.num_hidden_layers  # noqa: E731
    with pytest.raises(ExerciseError, match="one layer's count"):
        ch05b.check_lora_parameter_count(one_layer)

    def too_many(encoder, rank):  # W^O wrapped as well: apply_lora with the suffix "output.dense"
        apply_lora(encoder, rank, target_modules=("intermediate.dense", "output.dense"))

    with pytest.raises(ExerciseError, match="W\\^O"):
        ch05b.check_lora_on_feed_forward(too_many)

    def nonzero_b(encoder, rank):
        ch05b.lora_on_feed_forward(encoder, rank)
        for m in encoder.modules():
            if isinstance(m, LoRALinear):
                torch.nn.init.normal_(m.lora_B)

    with pytest.raises(ExerciseError, match="B must start at zero"):
        ch05b.check_lora_on_feed_forward(nonzero_b)


def test_solutions_print(capsys):
    for name in ch05b.SOLUTIONS:
        ch05b.solution(name)
    assert "def lora_on_feed_forward" in capsys.readouterr().out


def test_the_reference_ia3_matches_peft_on_key_and_value():
    """The reference (IA)^3 on our BertModel and peft's IA3 on transformers' (key and value,
    no feed-forward modules): the same trainable count and, with the same vectors, the same outputs."""
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    from bertedu.checkpoint import default_checkpoint

    checkpoint = default_checkpoint()
    reference = transformers.BertModel.from_pretrained(checkpoint, attn_implementation="eager")
    reference = peft.get_peft_model(reference, peft.IA3Config(target_modules=["key", "value"], feedforward_modules=[]))
    ours = BertModel.from_pretrained(checkpoint)
    ours.requires_grad_(False)
    for layer in ours.encoder.layer:
        layer.attention.self.key = ch05b.ia3_wrap(layer.attention.self.key)
        layer.attention.self.value = ch05b.ia3_wrap(layer.attention.self.value)
    trainable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert trainable(ours) == trainable(reference) == 6 * 2 * 384  # L * (key, value) * d_out
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, ch05b.IA3Linear):
                module.ia3_l.copy_(1 + 0.5 * torch.randn(module.ia3_l.shape, generator=generator))
                theirs = reference.get_submodule("base_model.model." + name).ia3_l["default"]
                theirs.copy_(module.ia3_l.view(theirs.shape))
    input_ids = torch.randint(5, ours.config.vocab_size, (2, 11), generator=generator)
    reference.eval(), ours.eval()
    with torch.no_grad():
        expected = reference(input_ids=input_ids).last_hidden_state
        got = ours(input_ids).last_hidden_state
        plain = BertModel.from_pretrained(checkpoint)(input_ids).last_hidden_state
    assert (got - plain).abs().max() > 1e-2  # the scales change the output...
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)  # ...as peft's do


@pytest.mark.parametrize("wrong, hint", [
    ("zeros", "start the scale at ones"),
    ("input", "one per \\*input\\* feature"),
    ("bias", "bias was not scaled"),
    ("unfrozen", "base layer still trains"),
])
def test_ia3_mistakes_get_their_hint(wrong, hint):
    class Wrong(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            if wrong != "unfrozen":
                base.requires_grad_(False)
            size = base.in_features if wrong == "input" else base.out_features
            self.scale = nn.Parameter(torch.zeros(size) if wrong == "zeros" else torch.ones(size))

        def forward(self, x):
            if wrong == "input":
                return self.base(x * self.scale)
            if wrong == "bias":
                return (x @ self.base.weight.T) * self.scale + self.base.bias
            return self.base(x) * self.scale

    with pytest.raises(ExerciseError, match=hint):
        ch05b.check_ia3_wrap(Wrong)

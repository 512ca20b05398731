"""Chapter 5b's exercise checkers: the references pass, the typical mistakes get their hint,
and the references agree with the package (bertedu.lora), not only with themselves."""
import pytest
import torch

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

"""The model's input value checks: free on a CPU, behind BERTEDU_DEBUG=1 elsewhere (issue 9).

A range check reads a boolean back from the device: on a GPU that makes the host wait in
every forward pass. Shape and dtype checks cost nothing and always run.
"""
import pytest
import torch

from bertedu.model import BertConfig, BertModel


class FakeCuda(torch.Tensor):
    """A CPU tensor that says it lives on a GPU: what the checks see there, without a GPU."""

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", 0)


@pytest.fixture(scope="module")
def model() -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=8)).eval()


BAD_INPUTS = {  # argument -> a (1, 3) batch with one value out of range
    "input_ids": ([[1, 50, 2]], "input_ids\\[0, 1\\] = 50 is outside \\[0, 49\\]"),
    "attention_mask": ([[1, 2, 1]], "attention_mask\\[0, 1\\] = 2"),
    "token_type_ids": ([[0, 0, 2]], "token_type_ids\\[0, 2\\] = 2"),
}


def arguments(name: str, tensor_type=torch.Tensor) -> dict[str, torch.Tensor]:
    good = {"input_ids": [[1, 7, 2]], "attention_mask": [[1, 1, 1]], "token_type_ids": [[0, 0, 0]]}
    values = {**good, name: BAD_INPUTS[name][0]}
    return {key: torch.tensor(value).as_subclass(tensor_type) for key, value in values.items()}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_range_errors_fire_on_a_cpu(model, name, monkeypatch):
    monkeypatch.delenv("BERTEDU_DEBUG", raising=False)
    with pytest.raises(ValueError, match=BAD_INPUTS[name][1]):
        model(**arguments(name))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_range_checks_off_the_cpu_only_in_debug_mode(model, name, monkeypatch):
    fake = arguments(name, FakeCuda)
    assert fake["input_ids"].device.type == "cuda"
    monkeypatch.delenv("BERTEDU_DEBUG", raising=False)
    model.check_inputs(**fake)  # no host-device sync: nothing read back, nothing raised
    monkeypatch.setenv("BERTEDU_DEBUG", "1")
    with pytest.raises(ValueError, match=BAD_INPUTS[name][1]):
        model.check_inputs(**fake)


def test_shape_and_dtype_checks_always_run_off_the_cpu(model, monkeypatch):
    monkeypatch.delenv("BERTEDU_DEBUG", raising=False)
    with pytest.raises(ValueError, match="must be a \\(batch, seq_len\\) tensor"):
        model.check_inputs(torch.tensor([1, 2, 3]).as_subclass(FakeCuda), None, None)
    with pytest.raises(ValueError, match="float32"):
        model.check_inputs(torch.ones(1, 3).as_subclass(FakeCuda), None, None)
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=8"):
        model.check_inputs(torch.ones(1, 9, dtype=torch.long).as_subclass(FakeCuda), None, None)
    with pytest.raises(ValueError, match="attention_mask has shape \\(1, 2\\)"):
        model.check_inputs(torch.ones(1, 3, dtype=torch.long).as_subclass(FakeCuda),
                           torch.ones(1, 2, dtype=torch.long).as_subclass(FakeCuda), None)


def test_label_range_check_off_the_cpu_only_in_debug_mode(monkeypatch):
    from bertedu.classification import check_labels

    labels = torch.tensor([0, 2])
    monkeypatch.delenv("BERTEDU_DEBUG", raising=False)
    with pytest.raises(ValueError, match="labels\\[1\\] = 2 is outside \\[0, 1\\]"):
        check_labels(labels, 2, 2)
    check_labels(labels.as_subclass(FakeCuda), 2, 2)  # no sync on a GPU
    with pytest.raises(ValueError, match="must have shape \\(3,\\)"):  # the shape check still runs there
        check_labels(labels.as_subclass(FakeCuda), 3, 2)
    monkeypatch.setenv("BERTEDU_DEBUG", "1")
    with pytest.raises(ValueError, match="labels\\[1\\] = 2"):
        check_labels(labels.as_subclass(FakeCuda), 2, 2)

"""Adapters and BitFit (bertedu.adapters), what each method trains, and PEFT folders on disk
(bertedu.parameter_efficient): save / load / predict, and the bad inputs each get one clear line."""
import json
import shutil

import pytest
import torch
from test_predict import VOCAB, write_vocab

from bertedu import cli
from bertedu.adapters import AdaptedLinear, adapter_parameter_count, apply_adapters
from bertedu.classification import BertForSequenceClassification, ClassifierInfo
from bertedu.errors import UserError
from bertedu.finetuning import encode_texts, predict_proba
from bertedu.sentiment import SentimentClassifier
from bertedu.lora import lora_parameter_count
from bertedu.model import BertConfig, BertModel
from bertedu.parameter_efficient import (
    PEFT_CONFIG_NAME,
    PEFT_WEIGHTS_NAME,
    PeftConfig,
    apply_method,
    count_parameters,
    load_peft,
    method_config,
    save_peft,
)

CONFIG = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=32, initializer_range=0.5)
H, I, L = 16, 32, 2
HEAD = (H * H + H) + (2 * H + 2)  # what every method trains besides its own: the pooler and the classifier


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A tiny random BERT checkpoint with a vocabulary: the base model of the PEFT folders below."""
    folder = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(0)
    BertModel(CONFIG).save_pretrained(folder)
    write_vocab(folder)
    return folder


def new_model(base_dir):
    return BertForSequenceClassification.from_pretrained(base_dir, num_labels=2)


def perturb_trainable(model, seed=1):
    """Stand-in for training: move every trainable tensor (so B != 0 and adapters are not the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * 0.3)


def test_an_adapter_starts_as_the_identity_and_sits_after_each_sublayer(base_dir):
    model = new_model(base_dir)
    ids = torch.tensor([[2, 5, 9, 3]])
    with torch.no_grad():
        before = model(ids).logits
        layers = apply_adapters(model.bert, bottleneck=4)
        torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
    assert sorted(layers) == sorted(f"encoder.layer.{i}.{part}" for i in range(L)
                                    for part in ("attention.output.dense", "output.dense"))
    assert all(isinstance(layer, AdaptedLinear) for layer in layers.values())


@pytest.mark.parametrize("method, rank, expected", [
    ("full", None, None),
    # LoRA on query and value: L layers x 2 projections x r (H + H), plus the head: the pooler
    # H * H + H and the classifier H * 2 + 2
    ("lora", 4, L * 2 * lora_parameter_count(H, H, 4) + HEAD),
    # adapters after W^O and W_2 (2 per layer) + every LayerNorm (2 per layer + the embeddings') + the head
    ("adapter", 3, L * 2 * adapter_parameter_count(H, 3) + (2 * L + 1) * 2 * H + HEAD),
    # every bias: Q, K, V, W^O, W_1, W_2, two LayerNorms per layer; embeddings' LayerNorm; the head
    ("bitfit", None, L * (4 * H + I + H + 2 * H) + H + HEAD),
])
def test_each_method_trains_what_it_says(base_dir, method, rank, expected):
    model = new_model(base_dir)
    apply_method(model, PeftConfig(method, rank=rank or 8))
    trainable, total = count_parameters(model)
    if expected is None:
        assert trainable == total == sum(p.numel() for p in new_model(base_dir).parameters())
    else:
        assert trainable == expected


@pytest.mark.parametrize("method, rank", [("lora", 4), ("adapter", 3), ("bitfit", None)])
def test_a_saved_peft_folder_is_small_and_predicts_as_the_model_did(base_dir, tmp_path, capsys, method, rank):
    model = new_model(base_dir)
    config = PeftConfig(method, rank=rank or 8, base_checkpoint=str(base_dir))
    apply_method(model, config)
    perturb_trainable(model)
    info = ClassifierInfo(max_length=16, head_tokens=4)
    folder = save_peft(model, tmp_path / "tuned", config, base_dir / "vocab.txt", info)
    assert {p.name for p in folder.iterdir()} == {PEFT_WEIGHTS_NAME, PEFT_CONFIG_NAME, "vocab.txt", "classifier.json"}
    trainable, total = count_parameters(model)
    assert (folder / PEFT_WEIGHTS_NAME).stat().st_size < 4 * trainable + 4096  # only the trained tensors
    texts = ["the film was great", "boring plot , awful acting"]
    examples = [type("E", (), {"input_ids": ids, "label": None})() for ids in
                encode_texts(SentimentClassifier(model, base_dir / "vocab.txt", info).tokenizer, texts,
                             SentimentClassifier(model, base_dir / "vocab.txt", info).truncation)]
    expected = predict_proba(model, examples)
    loaded, loaded_info = load_peft(folder)
    torch.testing.assert_close(torch.tensor(predict_proba(loaded, examples)), torch.tensor(expected), rtol=0, atol=1e-5)
    assert loaded_info.max_length == 16
    assert cli.main(["predict", "--model", str(folder), "--json", *texts]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    got = [record["probabilities"]["positive"] for record in records]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected[:, 1]), rtol=0, atol=1e-5)


def saved_lora(base_dir, folder):
    model = new_model(base_dir)
    config = PeftConfig("lora", rank=2, base_checkpoint=str(base_dir))
    apply_method(model, config)
    return save_peft(model, folder, config, base_dir / "vocab.txt", ClassifierInfo(max_length=16, head_tokens=4))


def test_peft_weights_onto_another_base_model_are_refused(base_dir, tmp_path, capsys):
    folder = saved_lora(base_dir, tmp_path / "tuned")
    other = tmp_path / "other-base"
    torch.manual_seed(1)  # the same architecture, other weights
    BertModel(CONFIG).save_pretrained(other)
    with pytest.raises(UserError, match="trained on another base model"):
        load_peft(folder, base_checkpoint=other)
    config = json.loads((folder / PEFT_CONFIG_NAME).read_text())
    (folder / PEFT_CONFIG_NAME).write_text(json.dumps(config | {"base_checkpoint": str(other)}))
    assert cli.main(["predict", "--model", str(folder), "a film"]) == 2
    err = capsys.readouterr().err
    assert "another base model" in err and len(err.strip().splitlines()) == 1


def test_a_peft_folder_whose_base_is_missing_says_so(base_dir, tmp_path, capsys):
    moved = tmp_path / "base-copy"
    shutil.copytree(base_dir, moved)
    folder = saved_lora(moved, tmp_path / "tuned")
    shutil.rmtree(moved)
    assert cli.main(["predict", "--model", str(folder), "a film"]) == 2
    err = capsys.readouterr().err
    assert "which is missing" in err and str(moved) in err and len(err.strip().splitlines()) == 1


def test_nothing_is_written_for_a_model_that_was_not_prepared(base_dir, tmp_path):
    model = new_model(base_dir)
    with pytest.raises(UserError, match="apply_method"):
        save_peft(model, tmp_path / "out", PeftConfig("lora"), base_dir / "vocab.txt", ClassifierInfo())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method, rank, message", [
    ("lora", 0, "rank 0 is out of range"),
    ("lora", 17, "from 1 to 16"),
    ("adapter", 0, "bottleneck size 0 is out of range"),
    ("dora", 4, "Unknown fine-tuning method"),
])
def test_method_config_checks_before_any_work(base_dir, method, rank, message):
    with pytest.raises(UserError, match=message):
        method_config(method, rank, str(base_dir), base_dir)


def test_finetune_command_refuses_a_bad_rank_in_one_line_and_writes_nothing(base_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    code = cli.main(["finetune", "--checkpoint", str(base_dir), "--method", "lora", "--rank", "0",
                     "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "rank 0 is out of range" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_finetune_command_with_lora_saves_a_folder_that_predict_loads(base_dir, tmp_path, capsys, imdb_archive,
                                                                       tiny_checkpoint):
    """`bertedu finetune --method lora --rank 4` end to end, from a tiny checkpoint (seconds)."""
    start = tiny_checkpoint
    output = tmp_path / "tuned-lora"
    code = cli.main(["finetune", "--checkpoint", str(start), "--method", "lora", "--rank", "4", "--output",
                     str(output), "--n-train", "32", "--epochs", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    config = json.loads((output / PEFT_CONFIG_NAME).read_text())
    assert config["method"] == "lora" and config["rank"] == 4 and config["base_checkpoint"] == str(start.resolve())
    assert cli.main(["predict", "--model", str(output), "A wonderful film."]) == 0
    assert capsys.readouterr().out.split("\t")[0] in {"negative", "positive"}

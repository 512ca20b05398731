"""`bertedu predict` and `bertedu finetune`: inputs in, labels and probabilities out, bad input explained."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bertedu import cli
from bertedu.classification import BertForSequenceClassification, ClassifierInfo, save_classifier
from bertedu.commands.predict import read_inputs
from bertedu.finetuning import Example, encode_texts, predict_proba
from bertedu.sentiment import SentimentClassifier
from bertedu.model import BertConfig, BertModel

REPO = Path(__file__).resolve().parents[1]
WORDS = "the a film movie was is great awful boring wonderful plot acting but not and i it".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", ",", "!"]


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token in VOCAB), encoding="utf-8")
    return folder / "vocab.txt"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random classifier saved as `bertedu finetune` saves one."""
    folder = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16,
                        initializer_range=0.5)  # large random weights: outputs that vary with the text
    model = BertForSequenceClassification(config, 2)
    save_classifier(model, folder, write_vocab(tmp_path_factory.mktemp("vocab")), ClassifierInfo(max_length=16, head_tokens=4))
    return folder


def predict(capsys, *args):
    """Run `bertedu predict` in this process: (exit code, stdout, stderr)."""
    code = cli.main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_arguments_in_labels_and_probabilities_out(model_dir, capsys):
    code, out, err = predict(capsys, "--model", model_dir, "a great film", "the plot was boring")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    for line, text in zip(lines, ["a great film", "the plot was boring"]):
        label, probability, preview = line.split("\t")
        assert label in {"negative", "positive"}
        assert 0.5 <= float(probability) <= 1.0
        assert preview == text


def test_json_lines_match_the_model(model_dir, capsys):
    texts = ["a great film", "awful acting !", "not boring but not great"]
    code, out, _ = predict(capsys, "--model", model_dir, "--json", *texts)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    classifier = SentimentClassifier.from_pretrained(model_dir, device=torch.device("cpu"))
    examples = [Example(ids) for ids in encode_texts(classifier.tokenizer, texts, classifier.truncation)]
    expected = predict_proba(classifier.model, examples)
    for record, text, row in zip(records, texts, expected):
        assert record["text"] == text
        assert record["probabilities"]["positive"] == pytest.approx(float(row[1]), abs=1e-6)
        assert record["probabilities"]["negative"] + record["probabilities"]["positive"] == pytest.approx(1.0)
        assert record["label"] == ("positive" if row[1] > row[0] else "negative")
        assert record["probability"] == pytest.approx(float(row.max()), abs=1e-6)
        assert record["truncated"] is False
    assert len({round(r["probabilities"]["positive"], 4) for r in records}) == 3  # the text matters


def test_file_input_skips_blank_lines_and_reports_line_numbers(model_dir, capsys, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a great film\n\n   \nthe plot was boring\n", encoding="utf-8")
    code, out, _ = predict(capsys, "--model", model_dir, "--json", "--file", reviews)
    assert code == 0
    assert [json.loads(line)["line"] for line in out.splitlines()] == [1, 4]


def test_very_long_text_is_cut_to_head_and_tail(model_dir, capsys):
    long_text = "the film was boring . " * 50_000 + "but the ending was wonderful !"
    code, out, _ = predict(capsys, "--model", model_dir, "--json", long_text)
    assert code == 0
    record = json.loads(out)
    assert record["truncated"] is True and record["n_tokens"] == 250_000 + 6
    # The model read [CLS] + 4 head tokens + 10 tail tokens + [SEP]: the same as a text of just those.
    classifier = SentimentClassifier.from_pretrained(model_dir, device=torch.device("cpu"))
    short = classifier.predict(["the film was boring film was boring . but the ending was wonderful !"])[0]
    assert record["probabilities"]["positive"] == pytest.approx(short.probabilities["positive"], abs=1e-6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["a fine film", ""], "Argument 2 is empty or only whitespace"),
        (["   "], "Argument 1 is empty or only whitespace"),
        (["\u200b"], "Argument 1 has no tokens after cleaning"),
        (["--batch-size", "0", "x"], "--batch-size must be at least 1"),
    ],
)
def test_bad_arguments_get_one_clear_line(model_dir, capsys, args, message):
    code, out, err = predict(capsys, "--model", model_dir, *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_non_utf8_file_is_explained_and_other_encodings_can_be_named(model_dir, capsys, tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("a great film\nthe caf\u00e9 scene was awful\n".encode("latin-1"))
    code, _, err = predict(capsys, "--model", model_dir, "--file", latin)
    assert code == 2
    assert "not valid utf-8 text: byte 0xe9 at offset 20 (line 2)" in err and "--encoding latin-1" in err
    code, out, _ = predict(capsys, "--model", model_dir, "--file", latin, "--encoding", "latin-1", "--json")
    assert code == 0 and json.loads(out.splitlines()[1])["text"] == "the caf\u00e9 scene was awful"


def test_model_folder_problems(model_dir, capsys, tmp_path):
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(tmp_path / "encoder")
    write_vocab(tmp_path / "encoder")
    code, _, err = predict(capsys, "--model", tmp_path / "encoder", "a film")
    assert code == 2 and "without a classification head" in err and "bertedu finetune" in err
    code, _, err = predict(capsys, "--model", tmp_path / "missing", "a film")
    assert code == 2 and "does not exist" in err
    code, _, err = predict(capsys, "--model", model_dir, "--file", tmp_path / "nope.txt")
    assert code == 2 and "No file" in err


class FakeStdin:
    def __init__(self, data: bytes, tty: bool = False) -> None:
        self.buffer = __import__("io").BytesIO(data)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_stdin_rules():
    inputs = read_inputs([], None, stdin=FakeStdin(b"one\n\ntwo\n"))
    assert [(i.text, i.line) for i in inputs] == [("one", 1), ("two", 3)]
    with pytest.raises(ValueError, match="No text to classify: give texts"):
        read_inputs([], None, stdin=FakeStdin(b"", tty=True))
    with pytest.raises(ValueError, match="only blank lines"):
        read_inputs([], "-", stdin=FakeStdin(b"\n  \n"))
    with pytest.raises(ValueError, match="Argument 1 is not valid UTF-8"):
        read_inputs(["caf\udce9"], None)


@pytest.mark.slow
def test_the_installed_command_reads_stdin_and_exits_cleanly(model_dir):
    """The real entry point in a fresh process: stdin in, JSON lines out; bad bytes, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "bertedu.cli", "predict", "--model", str(model_dir)]
    ok = subprocess.run([*command, "--json"], input="a great film\nawful plot\n".encode(), capture_output=True,
                        env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr.decode()
    assert [json.loads(line)["text"] for line in ok.stdout.decode().splitlines()] == ["a great film", "awful plot"]
    bad = subprocess.run(command, input=b"caf\xe9\n", capture_output=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert b"stdin is not valid utf-8 text" in bad.stderr and b"Traceback" not in bad.stderr


def test_predict_without_a_trained_model_says_how_to_get_one(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path))
    code, _, err = predict(capsys, "a film")
    assert code == 2 and "bertedu finetune" in err and "No fine-tuned model" in err


@pytest.mark.slow
def test_finetune_command_saves_a_model_that_predict_uses(tmp_path, capsys, imdb_archive, monkeypatch):
    """`bertedu finetune` end to end, from a tiny random checkpoint so that it takes seconds."""
    from bertedu.checkpoint import default_checkpoint

    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    torch.manual_seed(0)
    start = tmp_path / "tiny-start"
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)).save_pretrained(start)
    (start / "vocab.txt").write_bytes((default_checkpoint() / "vocab.txt").read_bytes())
    output = tmp_path / "tuned"
    code = cli.main(["finetune", "--quick", "--checkpoint", str(start), "--output", str(output),
                     "--n-train", "64", "--epochs", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Test: 1000 reviews" in out and "macro avg" in out
    info = json.loads((output / "classifier.json").read_text())
    assert info["max_length"] == 64 and info["head_tokens"] == 16  # fitted to the 64 positions
    assert info["metrics"]["n_test"] == 1000 and 0 <= info["metrics"]["test_accuracy"] <= 1
    code, out, err = predict(capsys, "--model", output, "A wonderful film.")
    assert code == 0 and out.split("\t")[0] in {"negative", "positive"}
    run_dir = tmp_path / "data" / "checkpoints" / "ch5-finetune-run-quick"
    assert {"last.pt", "best.pt", "run.json"} <= {p.name for p in run_dir.iterdir()}
    # The run folder resumes only the same run: other settings are refused, --fresh starts over.
    code = cli.main(["finetune", "--checkpoint", str(start), "--n-train", "32", "--epochs", "1", "--no-progress"])
    assert code == 2 and "other settings" in capsys.readouterr().err


class StopBeforeTraining(Exception):
    """Raised by the stand-in for `finetuning.finetune` that `stop_before_training` installs."""


def stop_before_training(monkeypatch, start) -> list:
    """Make `bertedu finetune` resolve every checkpoint name to the folder ``start`` and stop at
    the start of training; the returned list collects each run's (model, settings) there."""
    import bertedu.commands.finetune as finetune_command
    import bertedu.finetuning as finetuning

    monkeypatch.setattr(finetune_command, "resolve_checkpoint", lambda name, progress=True: start)
    seen = []

    def fake_finetune(model, train_examples, validation_examples, settings, **kwargs):
        seen.append((model, settings))
        raise StopBeforeTraining

    monkeypatch.setattr(finetuning, "finetune", fake_finetune)
    return seen


def test_finetune_command_gives_the_small_bert_its_own_settings(tmp_path, imdb_archive, monkeypatch):
    """`--checkpoint small` and `--checkpoint shipped` train with `small_bert_settings` (fitted
    truncation, each its own epochs and rate); explicit flags still win. Training itself is replaced: only the settings are checked."""
    import bertedu.finetuning as finetuning

    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    start = tmp_path / "small"
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(start)
    write_vocab(start)
    runs = stop_before_training(monkeypatch, start)
    # distinct schedules, so the test sees which one each name gets (the sweep's winners may coincide)
    monkeypatch.setattr(finetuning, "SMALL_BERT_SCHEDULES", {"random": (4, 3e-4), "pretrained": (3, 2e-3),
                                                             "shipped": (2, 1e-3)})
    for name, extra in (("small", []), ("shipped", []), ("small", ["--epochs", "1"])):
        with pytest.raises(StopBeforeTraining):
            cli.main(["finetune", "--quick", "--checkpoint", name, "--n-train", "16", "--fresh", *extra])
    seen = [settings for _, settings in runs]
    expected = finetuning.small_bert_settings(finetuning.finetune_settings(quick=True), 128, weights="pretrained")
    assert (seen[0].truncation, seen[0].epochs, seen[0].learning_rate) == (
        expected.truncation, expected.epochs, expected.learning_rate)
    shipped = finetuning.small_bert_settings(finetuning.finetune_settings(quick=True), 128, weights="shipped")
    assert (seen[1].truncation, seen[1].epochs, seen[1].learning_rate) == (
        shipped.truncation, shipped.epochs, shipped.learning_rate) == (expected.truncation, 2, 1e-3)
    assert seen[2].epochs == 1 and seen[2].learning_rate == expected.learning_rate


def test_finetune_command_fresh_attention_is_chapter5_point_1c(tmp_path, imdb_archive, monkeypatch, capsys):
    """`--fresh-attention` starts from the model chapter 5a's point 1c builds (the same seed, the same
    weights: `small_bert_classifier(..., new_attention=True, rescale=True)`) with the "rescaled"
    schedule; without it the saved attention is kept. Training is replaced: only the start is checked."""
    import bertedu.finetuning as finetuning
    from bertedu.settings import seed_everything

    monkeypatch.setenv("BERTEDU_DATA_DIR", str(tmp_path / "data"))
    start = tmp_path / "small"
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128)
    torch.manual_seed(3)
    saved = BertModel(config)
    with torch.no_grad():
        saved.embeddings.word_embeddings.weight.mul_(4)  # a pre-trained table, larger than BERT's 0.02
    saved.save_pretrained(start)
    write_vocab(start)
    seen = stop_before_training(monkeypatch, start)
    monkeypatch.setattr(finetuning, "SMALL_BERT_SCHEDULES", {"random": (4, 3e-4), "pretrained": (3, 2e-3),
                                                             "rescaled": (2, 7e-4), "shipped": (2, 1e-3)})
    for extra in (["--fresh-attention"], []):
        with pytest.raises(StopBeforeTraining):
            cli.main(["finetune", "--quick", "--checkpoint", "small", "--n-train", "16", "--fresh", *extra])
    (fresh, fresh_settings), (plain, plain_settings) = seen
    assert (fresh_settings.epochs, fresh_settings.learning_rate) == (2, 7e-4)
    assert (plain_settings.epochs, plain_settings.learning_rate) == (3, 2e-3)
    assert "New attention in all 2 layers" in capsys.readouterr().out
    seed_everything(fresh_settings.seed)
    reference = finetuning.small_bert_classifier(config, start, new_attention=True, rescale=True)
    for (name, a), b in zip(reference.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name  # the notebook's recipe, weight for weight
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(plain.state_dict()[query], saved.state_dict()["encoder.layer.0.attention.self.query.weight"])
    assert not torch.equal(fresh.state_dict()[query], plain.state_dict()[query])
    words = fresh.bert.embeddings.word_embeddings.weight
    assert words.pow(2).mean().sqrt().item() == pytest.approx(config.initializer_range, rel=1e-4)
    # A PEFT method saves only its own parameters, so it cannot keep new attention: refused at once.
    code = cli.main(["finetune", "--quick", "--checkpoint", "small", "--method", "lora", "--fresh-attention"])
    err = capsys.readouterr().err
    assert code == 2 and "--fresh-attention" in err and "--method full" in err and len(err.strip().splitlines()) == 1
    # The same refusal from Python names Python's words.
    from bertedu.errors import UserError
    from bertedu.parameter_efficient import PeftConfig

    with pytest.raises(UserError) as refused:
        finetuning.finetune_checkpoint(start, fresh_settings, peft=PeftConfig("lora"), fresh_attention=True)
    assert "fresh_attention=True" in str(refused.value) and "peft=None" in str(refused.value)
    assert "--" not in str(refused.value)

"""Issue 10: damaged or wrong files and bad inputs get one clear line, never a traceback or a silent
wrong answer. Each test names the probe of the issue it covers."""
import json
import os
import random
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bertedu import cli
from bertedu.checkpoint import default_checkpoint
from bertedu.classification import (
    BertForSequenceClassification,
    ClassifierInfo,
    load_classifier,
    save_classifier,
)
from bertedu.errors import UserError
from bertedu.model import BertConfig, BertModel
from bertedu.sentiment import SentimentClassifier
from bertedu.tokenization import BertTokenizer, load_fast_tokenizer

REPO = Path(__file__).resolve().parents[1]
REAL_VOCAB = default_checkpoint() / "vocab.txt"
REAL_LINES = REAL_VOCAB.read_text(encoding="utf-8").splitlines(keepends=True)  # 30,522 tokens
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random classifier over the real uncased vocabulary (30,522 tokens), saved as
    `bertedu finetune` saves one."""
    folder = tmp_path_factory.mktemp("classifier")
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY, initializer_range=0.5), 2)
    return save_classifier(model, folder, REAL_VOCAB, ClassifierInfo(max_length=32, head_tokens=8))


def variant(base: Path, target: Path, **files: str | bytes | None) -> Path:
    """A copy of ``base`` with some files replaced (``config_json=...`` for config.json); None deletes."""
    shutil.copytree(base, target)
    for name, content in files.items():
        path = target / name.replace("_json", ".json").replace("_txt", ".txt").replace("_safetensors", ".safetensors")
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return target


def predict(capsys, *args):
    """`bertedu predict` in this process: (exit code, stdout, stderr)."""
    code = cli.main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, out, err, *parts):
    assert code == 2 and out == "", err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for part in parts:
        assert part in err, err


# -- vocab.txt: the wrong one is refused, not used ---------------------------------------


def shuffled(lines, keep=0, seed=0):
    body = lines[keep:]
    random.Random(seed).shuffle(body)
    return "".join(lines[:keep] + body)


def test_vocab_of_the_wrong_size_names_both_numbers_and_the_files(model_dir, tmp_path, capsys):
    folder = variant(model_dir, tmp_path / "m", vocab_txt="".join(REAL_LINES[:3000]))
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"),
                          f"{folder / 'vocab.txt'} has 3,000 tokens",
                          f"{folder / 'config.json'} says vocab_size=30,522")
    # The same for a checkpoint folder, as `bertedu finetune --checkpoint DIR` reads one.
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors"):
        (checkpoint / name).symlink_to(default_checkpoint() / name)
    (checkpoint / "vocab.txt").write_text("".join(REAL_LINES[:3000]), encoding="utf-8")
    for load in (load_fast_tokenizer, BertTokenizer.from_pretrained):
        with pytest.raises(UserError, match="has 3,000 tokens but .*config.json says vocab_size=30,522"):
            load(checkpoint)


def test_shuffled_vocab_is_refused(model_dir, tmp_path, capsys):
    """A full shuffle moves the special tokens: caught from config.json alone, even in a folder
    saved before classifier.json recorded the vocabulary's fingerprint."""
    info = json.loads((model_dir / "classifier.json").read_text())
    info.pop("vocab_sha256", None)
    folder = variant(model_dir, tmp_path / "old", vocab_txt=shuffled(REAL_LINES), classifier_json=json.dumps(info))
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"),
                          "special tokens at the wrong ids", "[PAD]=", "reordered")


def test_vocab_with_only_ordinary_tokens_reordered_is_caught_by_the_fingerprint(model_dir, tmp_path, capsys):
    """[PAD] [UNK] [CLS] [SEP] [MASK] in place, the size right: only the fingerprint recorded at
    save time can tell (the limit of what config.json and the weights guarantee)."""
    folder = variant(model_dir, tmp_path / "m", vocab_txt=shuffled(REAL_LINES, keep=1000))
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"),
                          "is not the vocabulary this classifier was saved with")
    # Line endings are not the vocabulary: a copy with CRLF line ends still loads.
    crlf = variant(model_dir, tmp_path / "crlf", vocab_txt="".join(REAL_LINES).replace("\n", "\r\n"))
    assert load_classifier(crlf)[1].labels == ["negative", "positive"]


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    ("".join(REAL_LINES[:-1]).encode() + b"caf\xe9\n", "is not UTF-8 text (byte 0xe9 at offset"),
    ("".join(REAL_LINES[:-1] + [REAL_LINES[2000]]).encode(), "repeats the token"),
])
def test_empty_non_utf8_or_damaged_vocab_is_one_line(model_dir, tmp_path, capsys, content, message):
    folder = variant(model_dir, tmp_path / "m", vocab_txt=content)
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"), str(folder / "vocab.txt"), message)


def test_the_real_vocabularies_pass_the_checks(model_dir, tmp_path):
    """BERT's layout ([PAD]=0, [UNK] [CLS] [SEP] [MASK] = 100-103) and the course's (0, 1-4) load."""
    assert load_fast_tokenizer(default_checkpoint()).cls_token_id == 101
    classifier = SentimentClassifier.from_pretrained(model_dir, device=torch.device("cpu"))
    assert classifier.tokenizer.vocab_size == 30522
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "film"]
    BertModel(BertConfig(**TINY, vocab_size=len(tokens))).save_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
    assert load_fast_tokenizer(tmp_path).cls_token_id == 2


# -- config.json: wrong types and values name the file and the field ---------------------


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": "384"}, 'hidden_size must be a whole number; got "384"'),
    ({"num_attention_heads": 0}, "num_attention_heads must be at least 1; got 0"),
    ({"num_hidden_layers": 6.5}, "num_hidden_layers must be a whole number; got 6.5"),
    ({"vocab_size": None}, "vocab_size must be a whole number; got null"),
    ({"intermediate_size": -5}, "intermediate_size must be at least 1; got -5"),
    ({"max_position_embeddings": True}, "max_position_embeddings must be a whole number; got true"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob is a dropout probability"),
    ({"layer_norm_eps": "1e-12"}, "layer_norm_eps must be a number"),
    ({"hidden_act": ["gelu"]}, "hidden_act must be a string"),
    ({"pad_token_id": 40000}, "pad_token_id (40000) must be a token id below vocab_size"),
    ({"num_attention_heads": 5}, "hidden_size (384) must be a multiple of num_attention_heads (5)"),
])
def test_bad_config_values_name_the_file_and_the_field(tmp_path, change, message):
    config = json.loads((default_checkpoint() / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(UserError) as error:
        BertConfig.from_pretrained(tmp_path)
    assert str(error.value).startswith(f"{tmp_path / 'config.json'}: ") and message in str(error.value)


@pytest.mark.parametrize("content, message", [
    ("[1, 2]", "must hold a JSON object ({...}); it holds a list"),
    ('{"vocab_size": 30522,', "is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    ("", "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_config_that_is_not_a_json_object_names_the_file(model_dir, tmp_path, capsys, content, message):
    folder = variant(model_dir, tmp_path / "m", config_json=content)
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"), str(folder / "config.json"), message)


def test_bad_config_through_the_command_line_is_one_line(model_dir, tmp_path, capsys):
    config = json.loads((model_dir / "config.json").read_text())
    folder = variant(model_dir, tmp_path / "m", config_json=json.dumps({**config, "num_attention_heads": 0}))
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"),
                          f"{folder / 'config.json'}: num_attention_heads must be at least 1; got 0")


# -- weights: a damaged file is named ----------------------------------------------------


def test_empty_or_truncated_weights_are_named(model_dir, tmp_path, capsys):
    weights = (model_dir / "model.safetensors").read_bytes()
    for name, content in [("empty", b""), ("half", weights[:len(weights) // 2]), ("header", weights[:100])]:
        folder = variant(model_dir, tmp_path / name, model_safetensors=content)
        assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"),
                              f"{folder / 'model.safetensors'} ({len(content):,} bytes) cannot be read as weights",
                              "damaged or incomplete")


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_corrupt_pytorch_bin_is_named(tmp_path, damage):
    model = BertModel(BertConfig(**TINY))
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    data = (tmp_path / "pytorch_model.bin").read_bytes()
    damaged = data[:len(data) // 2] if damage == "truncated" else random.Random(0).randbytes(5000)
    (tmp_path / "pytorch_model.bin").write_bytes(damaged)
    with pytest.raises(UserError, match=r"pytorch_model\.bin \(\S+ bytes\) cannot be read as weights"):
        BertModel.from_pretrained(tmp_path)


# -- classifier.json ---------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    (lambda info: {**info, "lables": ["a", "b"]}, "has unknown key(s) ['lables']"),
    (lambda info: [info], "must hold a JSON object"),
    (lambda info: {**info, "labels": "ab"}, 'labels must be a list of label names (strings); got "ab"'),
    (lambda info: {**info, "labels": ["good", "good"]}, "at least 2 different classes"),
    (lambda info: {**info, "max_length": "32"}, 'max_length must be a whole number; got "32"'),
    (lambda info: {**info, "head_tokens": 99}, "head_tokens=99 must lie in [0, max_length - 2 = 30]"),
    (lambda info: {**info, "metrics": {"accuracy": "high"}}, "metrics must be an object of numbers"),
])
def test_bad_classifier_json_names_the_file_and_the_key(model_dir, tmp_path, capsys, edit, message):
    info = json.loads((model_dir / "classifier.json").read_text())
    folder = variant(model_dir, tmp_path / "m", classifier_json=json.dumps(edit(info)))
    assert_one_line_error(*predict(capsys, "--model", folder, "a fine film"), str(folder / "classifier.json"), message)


def test_invalid_classifier_json_and_id2label_name_the_file(model_dir, tmp_path, capsys):
    folder = variant(model_dir, tmp_path / "m", classifier_json="{")
    assert_one_line_error(*predict(capsys, "--model", folder, "a film"),
                          f"{folder / 'classifier.json'} is not valid JSON")
    config = json.loads((model_dir / "config.json").read_text())
    folder = variant(model_dir, tmp_path / "hf", classifier_json=None,
                     config_json=json.dumps({**config, "id2label": ["neg", "pos"]}))
    assert_one_line_error(*predict(capsys, "--model", folder, "a film"),
                          f"{folder / 'config.json'}: id2label must map")


# -- predict's inputs --------------------------------------------------------------------


def test_a_directory_as_file_says_it_is_a_directory(model_dir, tmp_path, capsys):
    assert_one_line_error(*predict(capsys, "--model", model_dir, "--file", tmp_path),
                          f"{tmp_path} is a directory")


def test_predict_with_standard_input_closed(model_dir, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # what Python sets when started with `<&-`
    assert_one_line_error(*predict(capsys, "--model", model_dir), "Standard input is closed")


def test_lines_are_split_on_newlines_only(model_dir, tmp_path, capsys):
    """\\u2028, \\x0c, \\x1c and \\x85 are inside a line (str.splitlines would cut there); CRLF ends a line."""
    text = "a great film\u2028with a twist\nthe plot\x0cwas boring\r\n\nawful\x1cacting\x85really\nthe end"
    (tmp_path / "reviews.txt").write_text(text, encoding="utf-8", newline="")
    code, out, err = predict(capsys, "--model", model_dir, "--json", "--file", tmp_path / "reviews.txt")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    expected = [(n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
    assert [(r["line"], r["text"]) for r in records] == expected
    assert [r["line"] for r in records] == [1, 2, 4, 5]


def test_a_line_without_tokens_is_reported_and_skipped(model_dir, tmp_path, capsys):
    (tmp_path / "reviews.txt").write_text("a great film\n\x01\x02\u200b\nthe plot was boring\n", encoding="utf-8")
    code, out, err = predict(capsys, "--model", model_dir, "--json", "--file", tmp_path / "reviews.txt")
    assert code == 0, err
    assert [json.loads(line)["line"] for line in out.splitlines()] == [1, 3]
    assert f"Line 2 of {tmp_path / 'reviews.txt'} has no tokens after cleaning" in err and "skipped" in err
    (tmp_path / "none.txt").write_text("\u200b\n\x01\n", encoding="utf-8")
    code, out, err = predict(capsys, "--model", model_dir, "--file", tmp_path / "none.txt")
    assert code == 2 and out == "" and "none of the 2 non-blank line(s) has a token" in err


def test_chunked_predictions_equal_one_pass(model_dir, tmp_path, capsys):
    words = "the a film movie was great awful boring wonderful plot acting but not".split()
    rng = random.Random(0)
    texts = [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(45)]
    (tmp_path / "reviews.txt").write_text("\n".join(texts), encoding="utf-8")
    code, out, _ = predict(capsys, "--model", model_dir, "--json", "--batch-size", "2",
                           "--file", tmp_path / "reviews.txt")
    assert code == 0
    classifier = SentimentClassifier.from_pretrained(model_dir, device=torch.device("cpu"))
    expected = classifier.predict(texts, batch_size=64)
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in records] == list(range(1, 46))
    for record, prediction in zip(records, expected, strict=True):
        assert record["probabilities"]["positive"] == pytest.approx(prediction.probabilities["positive"], abs=1e-6)


def test_progress_bar_only_on_a_terminal_and_not_with_the_flag(model_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "reviews.txt").write_text("a great film\nthe plot was boring\n", encoding="utf-8")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = predict(capsys, "--model", model_dir, "--file", tmp_path / "reviews.txt")
    assert code == 0 and "predict: 100%" in err
    code, _, err = predict(capsys, "--model", model_dir, "--file", tmp_path / "reviews.txt", "--no-progress")
    assert code == 0 and err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    code, _, err = predict(capsys, "--model", model_dir, "--file", tmp_path / "reviews.txt")
    assert code == 0 and err == ""


@pytest.mark.slow
def test_predict_streams_its_output_before_the_input_ends(model_dir):
    """A pipe that stays open: the first chunk's results come out while more input may follow."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "bertedu.cli", "predict", "--model", str(model_dir),
                                "--batch-size", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, bufsize=0)  # unbuffered: select sees every line
    try:
        process.stdin.write(b"a great film\n" * 8)  # one chunk: 8 batches of 1
        process.stdin.flush()
        lines = []
        while len(lines) < 8:  # generous: starting Python, torch and the model takes long on a busy CPU
            ready, _, _ = select.select([process.stdout], [], [], 300)
            assert process.poll() is None, process.stderr.read().decode()
            assert ready, "no output while the input was still open: predict did not stream"
            lines.append(process.stdout.readline())
        assert all(line.startswith((b"negative\t", b"positive\t")) for line in lines)
        process.stdin.write(b"the plot was boring\n")
        process.stdin.close()
        assert process.wait(timeout=60) == 0
        assert len(process.stdout.read().splitlines()) == 1
    finally:
        process.kill()


# -- model inputs and labels -------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**TINY, vocab_size=50), 2).eval()


@pytest.mark.parametrize("inputs, message", [
    (dict(input_ids=torch.zeros(2, 0, dtype=torch.long)), r"input_ids has shape \(2, 0\): sequences of length 0"),
    (dict(input_ids=torch.tensor([[2, 5, 3]], dtype=torch.uint8)),
     r"integer token ids; got dtype torch\.uint8.*0\.\.255"),
    (dict(input_ids=torch.tensor([[2, 5, 3]], dtype=torch.int16)), r"integer token ids; got dtype torch\.int16"),
    (dict(input_ids=torch.tensor([[2, 5, 3]]), token_type_ids=torch.zeros(1, 3, dtype=torch.uint8)),
     r"token_type_ids must hold integer token ids; got dtype torch\.uint8"),
    (dict(input_ids=torch.tensor([[2, 5, 3]]), labels=torch.tensor([2])),
     r"labels\[0\] = 2 is outside \[0, 1\]: the head has 2 classes"),
    (dict(input_ids=torch.tensor([[2, 5, 3], [2, 6, 3]]), labels=torch.tensor([1, -1])),
     r"labels\[1\] = -1 is outside"),
    (dict(input_ids=torch.tensor([[2, 5, 3]]), labels=torch.tensor([1.0])), r"labels must hold integer class ids"),
])
def test_bad_model_inputs_and_labels_are_value_errors_that_name_the_problem(tiny, inputs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**inputs)


def test_int32_ids_are_accepted_and_give_the_same_logits(tiny):
    ids = torch.tensor([[2, 5, 7, 3]])
    with torch.no_grad():
        torch.testing.assert_close(tiny(ids.int()).logits, tiny(ids).logits, rtol=0, atol=0)

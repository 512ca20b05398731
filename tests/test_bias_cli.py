"""`bertedu bias`: the audit table for any fine-tuned sentiment model, one-line errors otherwise."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bertedu import cli
from bertedu.bias import positive_probability, template_pairs
from bertedu.classification import BertForSequenceClassification, ClassifierInfo, save_classifier
from bertedu.sentiment import SentimentClassifier
from bertedu.model import BertConfig, BertModel

REPO = Path(__file__).resolve().parents[1]
WORDS = ("the a my this film movie was is and it wonderful brilliant awful boring long quiet gave performance "
         "brother sister father mother man woman actor actress friend american mexican adam amanda").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ".", ","]


def tiny_config() -> BertConfig:
    return BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, initializer_range=0.5)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random classifier: outputs that move with the words, so the audit finds differences."""
    folder = tmp_path_factory.mktemp("tiny-classifier")
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("".join(f"{t}\n" for t in VOCAB), encoding="utf-8")
    torch.manual_seed(0)
    save_classifier(BertForSequenceClassification(tiny_config(), 2), folder, vocab,
                    ClassifierInfo(max_length=32, head_tokens=8))
    return folder


def bias(capsys, *args):
    code = cli.main(["bias", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_rows_are_the_paired_differences_of_the_model(model_dir, capsys):
    code, out, err = bias(capsys, "--model", model_dir, "--reviews", "0", "--json", "--attribute", "gender (nouns)")
    assert code == 0, err
    report = json.loads(out)
    (row,) = report["rows"]
    pairs = template_pairs("gender (nouns)")
    classifier = SentimentClassifier.from_pretrained(model_dir)
    p_a = positive_probability(classifier, [p.text_a for p in pairs])
    p_b = positive_probability(classifier, [p.text_b for p in pairs])
    assert row["n_pairs"] == len(pairs) == 1200
    assert row["mean_difference"] == pytest.approx(float(np.mean(p_b - p_a)), abs=1e-6)
    assert row["mean_abs_difference"] == pytest.approx(float(np.mean(np.abs(p_b - p_a))), abs=1e-6)
    assert row["flips"] == int(((p_a >= 0.5) != (p_b >= 0.5)).sum())
    assert row["ci_low"] < row["mean_difference"] < row["ci_high"]
    assert row["mean_abs_difference"] > 0  # a random model does react to the words it knows


def test_table_has_one_row_per_attribute(model_dir, capsys):
    code, out, err = bias(capsys, "--model", model_dir, "--reviews", "0")
    assert code == 0, err
    for name in ("gender (names)", "gender (nouns)", "nationality"):
        assert name in out
    assert "Bonferroni" in out


@pytest.mark.slow
def test_counterfactual_reviews_and_accuracy(model_dir, capsys, imdb_archive):
    code, out, err = bias(capsys, "--model", model_dir, "--reviews", "40", "--json", "--attribute", "nationality")
    assert code == 0, err
    report = json.loads(out)
    assert [r["attribute"] for r in report["rows"]] == ["nationality", "gender (IMDb counterfactual)"]
    assert 0 < report["rows"][1]["n_pairs"] <= 40 and report["n_reviews"] == 40
    assert 0.0 <= report["test_accuracy"] <= 1.0


@pytest.mark.parametrize("args, message", [
    (["--reviews", "-1"], "--reviews must be 0 or more"),
    (["--reviews", "0", "--attribute", "age"], "No template attribute 'age'"),
])
def test_bad_arguments_are_one_line_errors(model_dir, capsys, args, message):
    code, _, err = bias(capsys, "--model", model_dir, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_missing_folder(capsys, tmp_path):
    code, _, err = bias(capsys, "--model", tmp_path / "nothing")
    assert code == 2 and "No model folder" in err


def test_a_folder_without_a_classifier_head_is_a_one_line_error(tmp_path):
    """In a fresh process, as a user runs it: exit code 2, one line, no traceback."""
    folder = tmp_path / "encoder"
    BertModel(tiny_config()).save_pretrained(folder)
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in VOCAB), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "bertedu.cli", "bias", "--model", str(folder), "--reviews", "0"],
                            capture_output=True, env=env, timeout=120)
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "without a classification head" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_audit_reuses_template_scores_given_to_it(model_dir):
    from bertedu.bias import bias_audit, score_pairs

    classifier = SentimentClassifier.from_pretrained(model_dir)
    pairs = template_pairs("gender (nouns)")
    scores = score_pairs(classifier, pairs)
    fresh = bias_audit(classifier, attributes=["gender (nouns)"])
    reused = bias_audit(classifier, attributes=["gender (nouns)"], template_scores=scores)
    assert reused.rows == fresh.rows
    doctored = type(scores)(scores.pairs, scores.p_a, scores.p_a)  # as if b scored like a: no difference
    assert bias_audit(classifier, attributes=["gender (nouns)"], template_scores=doctored).rows[0].mean_difference == 0
    with pytest.raises(ValueError, match="exactly the template pairs"):
        bias_audit(classifier, attributes=["gender (names)"], template_scores=scores)

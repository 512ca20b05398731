"""The architecture's promises: one file writer with the umask's mode, commands apart from the
library, user errors as one line and bugs with their traceback, the checkpoint switch."""
from __future__ import annotations

import ast
import importlib
import os
import stat
from pathlib import Path

import pytest
import torch

from bertedu import cli, files
from bertedu.commands import COMMANDS
from bertedu.errors import UserError

PACKAGE = Path(__file__).resolve().parents[1] / "bertedu"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_written_file_has_the_umask_mode(tmp_path, umask_022):
    """Saved models, vocabularies, JSON and training checkpoints: 0644 under umask 022 (readable by
    the class), not mkstemp's 0600."""
    from bertedu.classification import BertForSequenceClassification, ClassifierInfo, save_classifier
    from bertedu.model import BertConfig
    from bertedu.training import atomic_save

    config = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16)
    vocab = tmp_path / "source-vocab.txt"
    vocab.write_text("".join(f"t{i}\n" for i in range(30)))
    folder = save_classifier(BertForSequenceClassification(config, num_labels=2), tmp_path / "model", vocab, ClassifierInfo())
    atomic_save({"step": 1}, tmp_path / "run" / "last.pt")
    written = [*folder.iterdir(), tmp_path / "run" / "last.pt", files.write_text(tmp_path / "t.txt", "x")]
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "vocab.txt", "classifier.json"}
    assert {p.name: oct(mode_of(p)) for p in written} == {p.name: oct(0o644) for p in written}
    os.umask(0o077)  # a private umask is respected too
    assert mode_of(files.write_text(tmp_path / "private.txt", "x")) == 0o600


def test_trained_vocabulary_is_readable_by_the_class(tmp_path, umask_022):
    from bertedu.tokenization import train_wordpiece_vocab

    path = train_wordpiece_vocab(["a good film", "a bad film"] * 20, vocab_size=40, output_dir=tmp_path)
    assert mode_of(path) == 0o644


def test_a_killed_write_leaves_no_temporary_behind(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        files.atomic_write(target, lambda tmp: (tmp.write_text("half"), (_ for _ in ()).throw(RuntimeError("disk full"))))
    assert list(tmp_path.iterdir()) == []
    # a temporary left by a process that no longer exists is removed by the next write
    dead = tmp_path / f".x.json.999999999.abcd{files.TMP_SUFFIX}"
    alive = tmp_path / f".x.json.{os.getpid()}.abcd{files.TMP_SUFFIX}"
    dead.write_text("left by a killed run")
    alive.write_text("a write in progress")
    files.write_json(target, {"ok": True})
    assert not dead.exists() and alive.exists() and target.read_text().strip().startswith("{")


def test_library_modules_do_not_import_argparse_or_the_cli():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "commands" in path.parts or path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "argparse" or n.startswith("bertedu.cli") or n.startswith("bertedu.commands") for n in names):
                offenders.append(f"{path.relative_to(PACKAGE)}: {names}")
    assert not offenders


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_module_has_configure_and_run(name):
    module = importlib.import_module(COMMANDS[name][0])
    assert callable(module.configure) and callable(module.run)


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    from bertedu.commands import doctor

    monkeypatch.setattr(doctor, "run", lambda args: (_ for _ in ()).throw(UserError("the archive is damaged: fetch it again")))
    assert cli.main(["doctor"]) == 2
    assert capsys.readouterr().err == "bertedu doctor: error: the archive is damaged: fetch it again\n"
    monkeypatch.setattr(doctor, "run", lambda args: (_ for _ in ()).throw(ValueError("an internal bug")))
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["doctor"])


def test_the_checkpoint_switch_names_any_bert_folder(tmp_path, monkeypatch):
    from bertedu.checkpoint import CHECKPOINT_ENV, default_checkpoint
    from bertedu.model import BertConfig, BertModel

    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    embedded = default_checkpoint()
    folder = tmp_path / "my-bert"
    BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=16, max_position_embeddings=16)).save_pretrained(folder)
    monkeypatch.setenv(CHECKPOINT_ENV, str(folder))
    with pytest.raises(UserError, match="vocab.txt"):
        default_checkpoint()
    (folder / "vocab.txt").write_text("".join(f"t{i}\n" for i in range(30)))
    assert default_checkpoint() == folder != embedded
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "missing"))
    with pytest.raises(UserError, match="does not exist"):
        default_checkpoint()


def test_evaluating_restores_the_mode_and_frozen_features_leaves_the_model_as_it_was():
    from bertedu.finetuning import Example, frozen_features
    from bertedu.model import BertConfig, BertModel
    from bertedu.settings import evaluating

    model = BertModel(BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=16, max_position_embeddings=16)).train()
    with evaluating(model):
        assert not model.training and not torch.is_grad_enabled()
    assert model.training and torch.is_grad_enabled()
    frozen_features(model, [Example([2, 5, 6, 3], 1)], pad_id=0)
    assert model.training

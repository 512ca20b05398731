"""Run folders and training checkpoints from a careless or malicious user's side (issue 10).

No code runs from a checkpoint, ``--fresh`` clears only a folder this project made (and only
once the arguments are valid), a run resumes only a checkpoint shown to be its own, a resume
says so without a progress bar, and temporaries of a killed write are cleaned up.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bertedu import cli, training
from bertedu.errors import UserError
from bertedu.files import TMP_SUFFIX
from bertedu.training import StopTraining, TrainingConfig, prepare_run_dir, train

REPO = Path(__file__).parents[1]


class Regressor(nn.Module):
    def __init__(self, n_in: int = 6) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 1)

    def forward(self, x, y):
        return SimpleNamespace(loss=((self.linear(x).squeeze(-1) - y) ** 2).mean())


def regression_data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    return [{"x": x[i], "y": x[i].sum()} for i in range(n)]


def config(**overrides) -> TrainingConfig:
    return TrainingConfig(**{"learning_rate": 0.05, "max_steps": 6, "batch_size": 8, "progress": False, **overrides})


def trained_folder(folder: Path, **overrides) -> Path:
    torch.manual_seed(0)
    train(Regressor(), regression_data(), config(**overrides), checkpoint_dir=folder)
    return folder


class CreatesAFile:
    """Unpickling this calls open(target, "w"): a stand-in for any code a pickle can run."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


# ---------------------------------------------------------------------------------------
# Checkpoints hold tensors and plain data, and are read as such
# ---------------------------------------------------------------------------------------


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    folder, target = tmp_path / "run", tmp_path / "created-by-the-pickle"
    folder.mkdir()
    torch.save({"step": 3, "model": CreatesAFile(target)}, folder / "last.pt")
    with pytest.raises(UserError, match=r"last\.pt is not a bertedu training checkpoint: .*could run code"):
        train(Regressor(), regression_data(), config(), checkpoint_dir=folder)
    assert not target.exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "no model", "another model"])
def test_a_damaged_checkpoint_is_a_user_error_that_names_the_file(tmp_path, damage):
    folder = trained_folder(tmp_path / "run")
    last = folder / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(b"\x00not a checkpoint\xff" * 50)
    elif damage == "empty":
        last.write_bytes(b"")
    elif damage == "no model":
        torch.save({"step": 2}, last)
    model = Regressor(n_in=5 if damage == "another model" else 6)
    with pytest.raises(UserError, match=re.escape(str(last))) as raised:
        train(model, regression_data(), config(), checkpoint_dir=folder)
    assert "--fresh" in str(raised.value) and "\n" not in str(raised.value)


def test_checkpoints_load_with_weights_only(tmp_path):
    scores = iter([0.2, 0.7, 0.4])
    torch.manual_seed(0)
    train(Regressor(), regression_data(), config(eval_every=2, keep_best="score"),
          evaluate=lambda m: {"score": next(scores)}, checkpoint_dir=tmp_path)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert last["step"] == 6 and [row["step"] for row in last["history"]["train"]] == list(range(1, 7))
    assert last["history"]["best"] == {"step": 4, "score": 0.7} and best["step"] == 4
    assert training.read_checkpoint(tmp_path / "last.pt", keys=("optimizer", "global_batch"))["global_batch"] == 8


# ---------------------------------------------------------------------------------------
# Resuming: said aloud, and only a run's own checkpoint
# ---------------------------------------------------------------------------------------


def test_a_resumed_run_says_so_without_a_progress_bar(tmp_path, capsys):
    def stop(step, history):
        if step == 4:
            raise StopTraining

    torch.manual_seed(0)
    train(Regressor(), regression_data(), config(max_steps=10), checkpoint_dir=tmp_path, callbacks=[stop])
    assert "Resuming" not in capsys.readouterr().out
    history = train(Regressor(), regression_data(), config(max_steps=10), checkpoint_dir=tmp_path)
    assert len(history.train) == 10
    assert f"Resuming from {tmp_path / 'last.pt'} at step 4 of 10." in capsys.readouterr().out


def test_a_checkpoint_without_its_description_is_not_resumed(tmp_path):
    folder = trained_folder(tmp_path / "run")  # last.pt and history.json, no run.json
    with pytest.raises(UserError, match=r"holds a last\.pt but no run\.json.*--fresh"):
        prepare_run_dir(folder, {"lr": 0.05}, fresh=False)
    assert not (folder / "run.json").exists()
    prepare_run_dir(folder, {"lr": 0.05}, fresh=True)  # only the course's own files: a run folder
    assert sorted(p.name for p in folder.iterdir()) == [".bertedu-run", "run.json"]


def test_a_run_resumes_only_its_own_description(tmp_path):
    folder = tmp_path / "run"
    prepare_run_dir(folder, {"lr": 0.05, "betas": (0.9, 0.999)}, fresh=False)
    prepare_run_dir(folder, {"lr": 0.05, "betas": [0.9, 0.999]}, fresh=False)  # the same, as JSON
    with pytest.raises(UserError, match="other settings"):
        prepare_run_dir(folder, {"lr": 0.01, "betas": (0.9, 0.999)}, fresh=False)


def test_temporaries_of_a_killed_write_are_removed_when_a_run_starts(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    stale = tmp_path / f".last.pt.{dead_pid}.0badcafe{TMP_SUFFIX}"
    stale.write_bytes(b"half a checkpoint")
    mine = tmp_path / f".last.pt.{os.getpid()}.12345678{TMP_SUFFIX}"  # a live writer's: kept
    mine.write_bytes(b"being written")
    seen = []

    def crash(step, history):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        raise RuntimeError("killed before any checkpoint")

    with pytest.raises(RuntimeError, match="killed"):
        train(Regressor(), regression_data(), config(), checkpoint_dir=tmp_path, callbacks=[crash])
    assert seen == [[mine.name]]


# ---------------------------------------------------------------------------------------
# --fresh clears only a run folder, after the arguments are valid
# ---------------------------------------------------------------------------------------


def thesis(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\chapter{Introduction}")
    (folder / "chapters" / "one.tex").write_text("Once upon a time")
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fresh_with_a_bad_checkpoint_leaves_the_run_dir_alone(tmp_path):
    """The issue's probe: `bertedu finetune --fresh --run-dir THESIS --checkpoint no-such-folder`."""
    folder = thesis(tmp_path)
    before = contents(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "BERTEDU_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "bertedu.cli", "finetune", "--fresh", "--run-dir", str(folder),
                             "--checkpoint", str(tmp_path / "no-such-folder")],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "no-such-folder" in result.stderr
    assert contents(folder) == before


def test_fresh_never_clears_a_folder_the_course_did_not_make(tmp_path, tiny_checkpoint, capsys):
    folder = thesis(tmp_path)
    before = contents(folder)
    for fresh in (["--fresh"], []):
        code = cli.main(["finetune", "--quick", "--checkpoint", str(tiny_checkpoint), "--run-dir", str(folder),
                         "--no-progress", *fresh])
        err = capsys.readouterr().err
        assert code == 2 and f"{folder} is not a bertedu run folder" in err and len(err.splitlines()) == 1
        assert contents(folder) == before


def test_finetune_refuses_a_last_pt_from_somewhere_else(tmp_path, tiny_checkpoint, capsys):
    folder = trained_folder(tmp_path / "run")  # another run's last.pt, no run.json
    code = cli.main(["finetune", "--quick", "--checkpoint", str(tiny_checkpoint), "--run-dir", str(folder),
                     "--no-progress"])
    assert code == 2 and "no run.json" in capsys.readouterr().err
    assert not (folder / "run.json").exists()


def test_prepare_run_dir_clears_what_it_made_and_nothing_else(tmp_path):
    made = tmp_path / "made"
    prepare_run_dir(made, {"a": 1}, fresh=False)
    assert training.is_run_folder(made) and (made / training.RUN_MARKER).is_file()
    (made / "last.pt").write_bytes(b"old")
    (made / "sub").mkdir()
    prepare_run_dir(made, {"a": 2}, fresh=True)
    assert sorted(p.name for p in made.iterdir()) == [".bertedu-run", "run.json"]

    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_run_dir(empty, {"a": 1}, fresh=True)  # an empty folder is adopted
    assert training.is_run_folder(empty)

    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    with pytest.raises(UserError, match="is a file"):
        prepare_run_dir(a_file, {"a": 1}, fresh=True)
    assert a_file.read_text() == "keep me"

    folder = thesis(tmp_path)
    (folder / "run.json").write_text("{}")  # a file of the same name does not make it a run folder
    with pytest.raises(UserError, match="thesis is not a bertedu run folder"):
        prepare_run_dir(folder, {"a": 1}, fresh=True)
    assert (folder / "thesis.tex").is_file()


# ---------------------------------------------------------------------------------------
# Pre-training uses the same run folders
# ---------------------------------------------------------------------------------------


class DataWouldBePrepared(Exception):
    pass


@pytest.fixture
def pretrain_until_data(monkeypatch):
    """pretrain() up to the point where it would start on the data (the vocabulary)."""
    import bertedu.tokenization
    from bertedu.pretraining import pretrain, pretraining_settings

    def stop(*args, **kwargs):
        raise DataWouldBePrepared

    monkeypatch.setattr(bertedu.tokenization, "imdb_wordpiece_vocab", stop)
    return lambda folder, fresh=False, **training: pretrain(
        _with_training(pretraining_settings(quick=True), **training), checkpoint_dir=folder, fresh=fresh)


def _with_training(settings, **training):
    from dataclasses import replace

    return replace(settings, training=replace(settings.training, **training))


def test_pretrain_fresh_never_clears_a_folder_the_course_did_not_make(tmp_path, pretrain_until_data):
    folder = thesis(tmp_path)
    before = contents(folder)
    with pytest.raises(UserError, match="thesis is not a bertedu run folder"):
        pretrain_until_data(folder, fresh=True)
    assert contents(folder) == before


def test_pretrain_resumes_only_its_own_run(tmp_path, pretrain_until_data):
    with pytest.raises(UserError, match="no run.json"):
        pretrain_until_data(trained_folder(tmp_path / "other"))
    folder = tmp_path / "run"
    with pytest.raises(DataWouldBePrepared):
        pretrain_until_data(folder)  # new folder: its description is stored
    with pytest.raises(DataWouldBePrepared):
        pretrain_until_data(folder, progress=False)  # the progress bar is not part of the run
    with pytest.raises(UserError, match="other settings"):
        pretrain_until_data(folder, max_steps=7)
    with pytest.raises(DataWouldBePrepared):
        pretrain_until_data(folder, max_steps=7, fresh=True)

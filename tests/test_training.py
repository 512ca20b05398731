"""bertedu.training: schedule, optimizer groups, accumulation, resume, atomic checkpoints, DDP."""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import default_collate

from bertedu import training
from bertedu.training import (
    StopTraining,
    TrainingConfig,
    TrainingHistory,
    lr_multiplier,
    make_optimizer,
    train,
)

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import ddp_config, tiny_data, tiny_model


class Regressor(nn.Module):
    """A linear model with a per-example mean loss: accumulation must be exact for it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 1)

    def forward(self, x, y):
        loss = ((self.linear(x).squeeze(-1) - y) ** 2).mean()
        return SimpleNamespace(loss=loss)


def regression_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 6, generator=g)
    y = x @ torch.linspace(-1, 1, 6) + 0.1 * torch.randn(n, generator=g)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def fit(model_seed=0, **overrides):
    torch.manual_seed(model_seed)
    model = Regressor()
    config = TrainingConfig(**{"learning_rate": 0.05, "max_steps": 10, "batch_size": 8, "progress": False, **overrides})
    return model, train(model, regression_data(), config)


def losses(history: TrainingHistory) -> list[float]:
    return [row["loss"] for row in history.train]


def test_lr_schedule_warms_up_then_decays_linearly():
    factors = [lr_multiplier(step, warmup_steps=4, total_steps=20) for step in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[-1] == pytest.approx(1 / 16)
    decay = factors[4:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert lr_multiplier(0, warmup_steps=0, total_steps=10) == 1.0


def test_optimizer_decays_matrices_only_and_counts_tied_weights_once():
    model = tiny_model()
    optimizer = make_optimizer(model, TrainingConfig(weight_decay=0.01))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    ids = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_training_reduces_the_loss_and_records_the_schedule():
    _, history = fit(max_steps=30, warmup_steps=3)
    assert losses(history)[-1] < 0.2 * losses(history)[0]
    steps, lrs = history.series("lr")
    assert steps == list(range(1, 31))
    assert lrs[2] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.05 / 27)


def test_gradient_accumulation_matches_the_big_batch():
    _, big = fit(batch_size=8)
    _, accumulated = fit(batch_size=4, grad_accumulation_steps=2)
    assert losses(accumulated) == pytest.approx(losses(big), rel=1e-5)


def test_clipping_caps_the_update():
    _, history = fit(max_grad_norm=1e-3, max_steps=3)
    assert history.train[0]["grad_norm"] > 1.0  # the norm before clipping is logged


def test_evaluation_and_best_checkpoint(tmp_path):
    scores = iter([0.1, 0.9, 0.5])
    config = dict(max_steps=9, eval_every=3, keep_best="score", load_best_at_end=True)
    torch.manual_seed(0)
    model = Regressor()
    weights_at = {}

    def evaluate(m):
        weights_at[len(weights_at) + 1] = m.linear.weight.detach().clone()
        return {"score": next(scores)}

    history = train(model, regression_data(), TrainingConfig(learning_rate=0.05, batch_size=8, progress=False, **config),
                    evaluate=evaluate, checkpoint_dir=tmp_path)
    assert [row["step"] for row in history.evals] == [3, 6, 9]
    assert history.best == {"step": 6, "score": 0.9}
    assert (tmp_path / "best.pt").is_file()
    torch.testing.assert_close(model.linear.weight, weights_at[2])  # the step-6 weights are back


def test_best_weights_without_a_checkpoint_folder():
    scores = iter([0.3, 0.2])  # lower is better here
    torch.manual_seed(0)
    model = Regressor()
    snapshots = []

    def evaluate(m):
        snapshots.append(m.linear.weight.detach().clone())
        return {"loss": next(scores)}

    config = TrainingConfig(learning_rate=0.05, batch_size=8, max_steps=4, eval_every=2, keep_best="loss",
                            greater_is_better=False, load_best_at_end=True, progress=False)
    history = train(model, regression_data(), config, evaluate=evaluate)
    assert history.best["step"] == 4
    torch.testing.assert_close(model.linear.weight, snapshots[1])


@pytest.mark.slow
def test_interrupted_run_resumes_on_the_same_curve(tmp_path):
    """Crash at step 7, resume from the step-6 checkpoint: the curve continues identically.

    Dropout is on, so this also checks that dropout masks are replayed after the resume.
    """
    config = TrainingConfig(learning_rate=3e-3, max_steps=10, batch_size=8, warmup_steps=2,
                            checkpoint_every=3, eval_every=5, progress=False)
    data = tiny_data()

    def evaluate(m):
        return {"mlm_loss": m(**torch.utils.data.default_collate([data[i] for i in range(16)])).mlm_loss}

    reference_model = tiny_model(dropout=0.1)
    reference = train(reference_model, data, config, evaluate=evaluate, track=("mlm_loss", "nsp_loss"))

    def crash(step, history):
        if step == 7:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny_model(dropout=0.1), data, config, evaluate=evaluate, checkpoint_dir=tmp_path,
              track=("mlm_loss", "nsp_loss"), callbacks=[crash])
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 6

    resumed_model = tiny_model(seed=123, dropout=0.1)  # different init: the checkpoint must win
    resumed = train(resumed_model, data, config, evaluate=evaluate, checkpoint_dir=tmp_path,
                    track=("mlm_loss", "nsp_loss"))
    assert [r["step"] for r in resumed.train] == list(range(1, 11))
    assert resumed.train == reference.train  # exactly: same batches, masks, dropout, updates
    assert resumed.evals == reference.evals
    for (name, a), b in zip(reference_model.state_dict().items(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert (tmp_path / "history.json").is_file()


def test_stop_training_writes_a_checkpoint(tmp_path):
    def stop(step, history):
        if step == 4:
            raise StopTraining

    torch.manual_seed(0)
    history = train(Regressor(), regression_data(), TrainingConfig(learning_rate=0.05, max_steps=10, batch_size=8,
                                                                    progress=False),
                    checkpoint_dir=tmp_path, callbacks=[stop])
    assert len(history.train) == 4
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 4


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    training.atomic_save({"step": 1}, path)

    def broken_save(obj, file):  # the atomic writer hands torch.save the temporary file's path
        Path(file).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        training.atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_resuming_with_another_global_batch_is_refused(tmp_path):
    torch.manual_seed(0)
    train(Regressor(), regression_data(), TrainingConfig(learning_rate=0.05, max_steps=2, batch_size=8,
                                                          progress=False), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="global batch of 8"):
        train(Regressor(), regression_data(), TrainingConfig(learning_rate=0.05, max_steps=4, batch_size=16,
                                                              progress=False), checkpoint_dir=tmp_path)


def test_config_errors_say_what_to_do():
    with pytest.raises(ValueError, match="lower batch_size"):
        fit(batch_size=128)
    with pytest.raises(ValueError, match="exactly one of max_steps or epochs"):
        fit(max_steps=None)
    _, history = fit(max_steps=None, epochs=2)  # 64 examples / 8 = 8 steps per epoch
    assert len(history.train) == 16


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo), 4 examples each, against one process with the
    same global batch of 8: as 2 accumulated micro-batches of 4 (the same arithmetic, so
    tight) and as one batch of 8 (the MLM loss averages over tokens, so only close)."""
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    for name, a in ranks[0]["state"].items():  # DDP keeps the replicas identical
        torch.testing.assert_close(a, ranks[1]["state"][name], rtol=0, atol=0, msg=name)
    ddp = TrainingHistory.from_dict(ranks[0]["history"])

    model = tiny_model()
    accumulated = train(model, tiny_data(), ddp_config(batch_size=4, grad_accumulation_steps=2),
                        track=("mlm_loss", "nsp_loss"))
    assert losses(ddp) == pytest.approx(losses(accumulated), rel=1e-4)
    for name, a in model.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], a, rtol=1e-4, atol=1e-5, msg=name)

    one_batch = train(tiny_model(), tiny_data(), ddp_config(batch_size=8), track=("mlm_loss", "nsp_loss"))
    assert losses(ddp) == pytest.approx(losses(one_batch), rel=2e-2)
    # And it learns: on all the data (fixed masks), the trained weights beat the initial ones. (The
    # per-step losses of 6 steps are on different batches, too noisy to compare first with last.)
    data = tiny_data()
    data.set_epoch(0)
    batch = default_collate([data[i] for i in range(len(data))])
    trained = tiny_model()
    trained.load_state_dict(ranks[0]["state"])
    with torch.no_grad():
        assert trained.eval()(**batch).loss < tiny_model().eval()(**batch).loss


def test_a_time_budget_stops_training_and_schedules_the_rate_over_time(tmp_path, monkeypatch):
    ticks = iter(range(0, 10_000, 3))  # each call of the clock is 3 s later: one step takes 3 s
    monkeypatch.setattr(training.time, "perf_counter", lambda: float(next(ticks)))
    torch.manual_seed(0)
    config = TrainingConfig(learning_rate=0.1, max_steps=1_000, max_minutes=1.0, batch_size=8, warmup_ratio=0.5,
                            progress=False)
    history = train(Regressor(), regression_data(), config, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    rates = [row["lr"] for row in history.train]
    assert len(rates) == 20  # 60 s of budget / 3 s per step
    assert rates.index(max(rates)) == 10 and rates[-1] == pytest.approx(0.01, rel=1e-3)  # up, then down, over time
    assert torch.load(tmp_path / "last.pt", weights_only=False)["train_seconds"] == pytest.approx(60.0)
    assert training.time_budget_fraction(30.0, 1.0) == 0.5 and training.time_budget_fraction(90.0, 1.0) == 1.0

"""A small, generic training loop: chapter 4 pre-trains with it, chapter 5 fine-tunes with it.

What it does, in the order of one optimizer step
------------------------------------------------
1. take the next *global batch* of example indices (a fresh shuffle every epoch);
2. split it into micro-batches (gradient accumulation) and, under ``torchrun``, across
   processes (DDP); run forward under bf16 autocast on a GPU, ``backward`` on
   ``loss / grad_accumulation_steps``;
3. clip the gradient norm, take an AdamW step with a linear warm-up-then-decay learning rate;
4. record the loss, evaluate every ``eval_every`` steps, checkpoint every
   ``checkpoint_every`` steps (atomically), keep the best checkpoint if asked.

The contract (all a model or a chapter has to provide)
------------------------------------------------------
- ``model``: an ``nn.Module`` whose ``forward(**batch)`` returns an object with a scalar
  ``.loss`` when the batch holds labels (the Hugging Face convention).
- ``train_data``: a sequence of examples (``len(data)`` and ``data[i]``). ``collate_fn``
  turns a list of examples into a batch, a ``dict[str, Tensor]`` of model inputs and
  labels. The default, ``torch.utils.data.default_collate``, stacks dicts of equal-shape
  tensors. If ``train_data`` has ``set_epoch(epoch)`` it is called at each new epoch
  (used for fresh random masks every epoch).
- ``evaluate(model) -> dict[str, float]``: called with the bare model in eval mode,
  under ``torch.no_grad()``, every ``eval_every`` steps and after the last step.

Example::

    from bertedu.training import TrainingConfig, train
    config = TrainingConfig(learning_rate=3e-5, epochs=2, batch_size=16, eval_every=100,
                            keep_best="accuracy", load_best_at_end=True)
    history = train(model, examples, config, collate_fn=pad_batch,
                    evaluate=lambda m: {"accuracy": accuracy(m, validation)},
                    checkpoint_dir=checkpoints_dir("my-run"))
    history.series("loss")        # ([1, 2, ...], [0.69, 0.68, ...]) per optimizer step
    history.evals[-1]             # {"step": 250, "accuracy": 0.87}
    history.best                  # the eval row of the kept best checkpoint

Batch sizes
-----------
``batch_size`` is what one process puts through the model at once (a micro-batch). One
optimizer step sees the *global batch* ``batch_size * grad_accumulation_steps *
world_size`` examples. Accumulating two micro-batches of 8 on one process and running two
processes with 8 each compute the same step: that is how a learner who outgrows one machine
keeps the same curve.

Resuming
--------
With ``checkpoint_dir`` set, ``last.pt`` there holds the model, the optimizer, the step
and the history. ``train`` finds it and continues: the data order is a function of
(seed, epoch) and every step re-seeds dropout from (seed, step, rank), so a resumed run
draws exactly the batches and dropout masks the uninterrupted run would have drawn.
``history.json`` beside it is the same history in plain JSON; ``best.pt`` holds the
weights of the best evaluation when ``keep_best`` names a metric.

Several processes
-----------------
Start the same script with ``torchrun --nproc_per_node=N`` (``init_distributed()`` joins
the group: NCCL on GPUs, gloo on CPUs). ``train`` wraps the model in
``DistributedDataParallel``; rank 0 alone evaluates, writes checkpoints and shows the
progress bar; the logged loss is the mean over processes.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from bertedu.files import atomic_write, write_json
from bertedu.settings import autocast, select_device

CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"
HISTORY_NAME = "history.json"


@dataclass
class TrainingConfig:
    """Everything that shapes the optimisation. Give ``max_steps`` or ``epochs``."""

    learning_rate: float = 1e-4
    max_steps: int | None = None        # optimizer steps in total...
    max_minutes: float | None = None    # ...or (also) a wall-clock budget: see time_budget_fraction
    epochs: float | None = None         # ...or passes over train_data (one of the two)
    batch_size: int = 32                # per process, per micro-batch (see module docstring)
    grad_accumulation_steps: int = 1
    weight_decay: float = 0.01          # AdamW's decoupled decay; not on biases or LayerNorm
    warmup_ratio: float = 0.1           # fraction of steps with a rising learning rate...
    warmup_steps: int | None = None     # ...or an exact count (wins over the ratio)
    max_grad_norm: float | None = 1.0   # None: no clipping (the norm is still logged)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-6              # BERT's value
    eval_every: int = 0                 # 0: evaluate only after the last step
    eval_at_start: bool = False         # also evaluate the untrained model (step 0)
    checkpoint_every: int = 0           # 0: checkpoint only after the last step
    keep_best: str | None = None        # an evaluate() metric; keeps best.pt
    greater_is_better: bool = True
    load_best_at_end: bool = False      # put the best weights back into the model at the end
                                        # (with several processes: needs checkpoint_dir)
    seed: int = 0
    bf16: bool = True                   # autocast to bf16 where supported (CUDA), else fp32
    progress: bool = True               # tqdm bar (rank 0 only)

    def global_batch_size(self, world_size: int = 1) -> int:
        return self.batch_size * self.grad_accumulation_steps * world_size

    def total_steps(self, n_examples: int, world_size: int = 1) -> int:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("TrainingConfig: set exactly one of max_steps or epochs.")
        if self.max_steps is not None:
            return self.max_steps
        return max(1, math.ceil(self.epochs * steps_per_epoch(n_examples, self.global_batch_size(world_size))))

    def warmup(self, total_steps: int) -> int:
        if self.warmup_steps is not None:
            return self.warmup_steps
        return int(self.warmup_ratio * total_steps)


@dataclass
class TrainingHistory:
    """What happened, step by step: plain lists of dicts, easy to plot and to save as JSON.

    ``train``: one row per optimizer step: ``step`` (1 = after the first update), ``loss``
    (mean over the global batch, before that update), ``lr``, ``grad_norm`` and any output
    fields named in ``track``. ``evals``: one row per evaluation: ``step`` plus the metrics.
    """

    train: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] | None = None

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one quantity, from the training rows or else the eval rows."""
        rows = self.train if any(name in row for row in self.train) else self.evals
        pairs = [(int(row["step"]), float(row[name])) for row in rows if name in row]
        if not pairs:
            raise KeyError(f"No {name!r} in the history; known: {sorted(self.names())}")
        steps, values = zip(*pairs)
        return list(steps), list(values)

    def names(self) -> set[str]:
        return {key for row in self.train + self.evals for key in row} - {"step"}

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train, "evals": self.evals, "best": self.best}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingHistory:
        return cls(list(data["train"]), list(data["evals"]), data.get("best"))

    def plot(self, *names: str, ax: Any = None, smooth: int = 1) -> Any:
        """Plot quantities against steps; ``smooth`` > 1 overlays a running mean."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(6, 3.5))[1]
        for name in names or ("loss",):
            steps, values = self.series(name)
            line, = ax.plot(steps, values, alpha=0.35 if smooth > 1 else 1.0, label=name)
            if smooth > 1 and len(values) >= smooth:
                kernel = torch.ones(smooth) / smooth
                smoothed = torch.conv1d(torch.tensor(values)[None, None], kernel[None, None])[0, 0]
                ax.plot(steps[smooth - 1:], smoothed.tolist(), color=line.get_color())
        ax.set_xlabel("optimizer step")
        ax.legend()
        return ax


class StopTraining(Exception):
    """Raise from a callback to stop cleanly: a checkpoint is written, history returned."""


# ---------------------------------------------------------------------------------------
# The pieces of one step, small enough to derive in a notebook cell.
# ---------------------------------------------------------------------------------------


def lr_multiplier(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then linear decay towards 0: the factor for update ``step`` (0-based).

    Warm-up: the first updates use small steps while Adam's moment estimates are still
    noisy. Decay: small steps at the end let the weights settle.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def time_budget_fraction(train_seconds: float, max_minutes: float) -> float:
    """How much of a wall-clock budget is spent (0 to 1), as in Cramming (Geiping & Goldstein 2022).

    With ``max_minutes`` set, the learning-rate schedule runs over *time* instead of steps
    (warm-up for the first ``warmup_ratio`` of the minutes, then the decay), and training
    stops when the budget is spent, so a run on a slower or busier machine takes fewer but
    complete steps. Only training time counts (not evaluation or checkpoints); it is saved
    in the checkpoint, so a resumed run continues the same budget. The number of steps then
    depends on the machine: such a run is not replayable step for step.
    """
    return min(1.0, train_seconds / (60.0 * max_minutes))


def make_optimizer(model: nn.Module, config: TrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: biases and LayerNorm gains are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]  # shared (tied) weights once
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps)


def steps_per_epoch(n_examples: int, global_batch: int) -> int:
    if n_examples < global_batch:
        raise ValueError(
            f"train_data has {n_examples} examples, fewer than one global batch of {global_batch} "
            "(batch_size x grad_accumulation_steps x processes): lower batch_size or add data."
        )
    return n_examples // global_batch  # the incomplete last batch is dropped


def global_batch_indices(step: int, n_examples: int, global_batch: int, seed: int) -> tuple[int, torch.Tensor]:
    """(epoch, indices) of the examples that update ``step`` (0-based) trains on.

    A pure function of its arguments: this is what lets a resumed run, or N processes,
    agree on the data without any state.
    """
    per_epoch = steps_per_epoch(n_examples, global_batch)
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return epoch, order[position * global_batch:(position + 1) * global_batch]


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed for dropout in one step on one process (distinct per step and per rank)."""
    return (seed * 1_000_003 + step * 1_009 + rank) % (2**63 - 1)


# ---------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through the one atomic writer (``bertedu.files``)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_weights(model: nn.Module, checkpoint: Path) -> dict[str, Any]:
    """Load the model weights of ``last.pt`` or ``best.pt`` into ``model``; return the file's dict."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    return state


# ---------------------------------------------------------------------------------------
# Several processes (torchrun)
# ---------------------------------------------------------------------------------------


def init_distributed() -> tuple[int, int]:
    """Join the process group ``torchrun`` set up; return (rank, world_size).

    Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) this does nothing and
    returns (0, 1). NCCL talks between GPUs, gloo between CPU processes.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        if select_device().type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


# ---------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------


def _field(output: Any, name: str) -> torch.Tensor:
    return output[name] if isinstance(output, Mapping) else getattr(output, name)


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _run_evaluation(model: nn.Module, evaluate: Callable, device: torch.device, bf16: bool) -> dict[str, float]:
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast(device, enabled=bf16):
        metrics = {name: float(value) for name, value in evaluate(model).items()}
    model.train(was_training)
    return metrics


def _is_better(value: float, best: float | None, greater: bool) -> bool:
    return best is None or (value > best if greater else value < best)


def train(
    model: nn.Module,
    train_data: Sequence[Any],
    config: TrainingConfig,
    *,
    collate_fn: Callable[[list[Any]], Mapping[str, torch.Tensor]] = default_collate,
    evaluate: Callable[[nn.Module], Mapping[str, float]] | None = None,
    checkpoint_dir: str | Path | None = None,
    track: Sequence[str] = (),
    callbacks: Sequence[Callable[[int, TrainingHistory], None]] = (),
    device: torch.device | None = None,
) -> TrainingHistory:
    """Train ``model`` in place on ``train_data``; return the history (see the module docstring).

    ``track`` names extra scalar fields of the model output to log per step (e.g.
    ``("mlm_loss", "nsp_loss")``). Each callback is called as ``callback(step, history)``
    after every optimizer step; raising ``StopTraining`` ends training cleanly.
    """
    rank, world_size = _rank_and_world()
    device = device or select_device()
    if device.type == "cuda" and world_size > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    n_examples = len(train_data)
    global_batch = config.global_batch_size(world_size)
    steps_per_epoch(n_examples, global_batch)  # fails early, with advice, on too little data
    total_steps = config.total_steps(n_examples, world_size)
    warmup_steps = config.warmup(total_steps)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    model.to(device)
    optimizer = make_optimizer(model, config)
    history = TrainingHistory()
    start_step = 0
    train_seconds = 0.0  # time spent in training steps (for max_minutes)
    budget_steps = 1_000_000  # the time schedule's resolution (max_minutes)

    # 1. Resume: the last checkpoint holds everything a step depends on.
    if checkpoint_dir is not None and (checkpoint_dir / CHECKPOINT_NAME).is_file():
        state = load_weights(model, checkpoint_dir / CHECKPOINT_NAME)
        if state["global_batch"] != global_batch:
            raise ValueError(
                f"{checkpoint_dir} holds a run with a global batch of {state['global_batch']}, "
                f"this one has {global_batch}: the data order would differ. Use the same "
                "batch settings or a fresh checkpoint_dir."
            )
        optimizer.load_state_dict(state["optimizer"])
        history = TrainingHistory.from_dict(state["history"])
        start_step = state["step"]
        train_seconds = state.get("train_seconds", 0.0)
        if rank == 0 and config.progress:
            print(f"Resuming from {checkpoint_dir / CHECKPOINT_NAME} at step {start_step} of {total_steps}.")

    # 2. Several processes: DDP averages gradients across them during backward.
    bare_model = model
    if world_size > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def save_checkpoint(step: int) -> None:
        if checkpoint_dir is not None and rank == 0:
            atomic_save({"step": step, "model": bare_model.state_dict(), "optimizer": optimizer.state_dict(),
                         "history": history.to_dict(), "config": asdict(config),
                         "global_batch": global_batch, "world_size": world_size, "train_seconds": train_seconds},
                        checkpoint_dir / CHECKPOINT_NAME)
            write_json(checkpoint_dir / HISTORY_NAME, history.to_dict())
        _barrier()

    best_in_memory: dict[str, torch.Tensor] | None = None  # best weights when there is no folder

    def run_evaluation(step: int) -> None:
        nonlocal best_in_memory
        if evaluate is None or rank != 0:
            return
        metrics = _run_evaluation(bare_model, evaluate, device, config.bf16)
        row = {"step": step, **metrics}
        history.evals.append(row)
        if config.progress:
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if config.keep_best is not None:
            if config.keep_best not in metrics:
                raise ValueError(f"keep_best={config.keep_best!r} is not among the metrics {sorted(metrics)}")
            if _is_better(metrics[config.keep_best], (history.best or {}).get(config.keep_best),
                          config.greater_is_better):
                history.best = row
                if checkpoint_dir is not None:
                    atomic_save({"step": step, "metrics": metrics, "model": bare_model.state_dict()},
                                checkpoint_dir / BEST_NAME)
                elif config.load_best_at_end:
                    best_in_memory = {k: v.detach().to("cpu", copy=True) for k, v in bare_model.state_dict().items()}

    bar = tqdm(total=total_steps, initial=start_step, desc="training", disable=not (config.progress and rank == 0))
    model.train()
    if config.eval_at_start and start_step == 0:
        run_evaluation(0)

    current_epoch = -1
    step = start_step
    out_of_time = config.max_minutes is not None and time_budget_fraction(train_seconds, config.max_minutes) >= 1
    try:
        while step < total_steps and not out_of_time:
            started = time.perf_counter()
            epoch, indices = global_batch_indices(step, n_examples, global_batch, config.seed)
            if epoch != current_epoch and hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            current_epoch = epoch
            torch.manual_seed(step_seed(config.seed, step, rank))  # dropout: replayable on resume

            # 3. Forward/backward over this process's micro-batches; DDP syncs on the last.
            my_indices = indices.view(world_size, config.grad_accumulation_steps, config.batch_size)[rank]
            logged = torch.zeros(1 + len(track), device=device)
            for micro, micro_indices in enumerate(my_indices):
                batch = _to_device(collate_fn([train_data[i] for i in micro_indices.tolist()]), device)
                last_micro = micro == config.grad_accumulation_steps - 1
                no_sync = model.no_sync() if world_size > 1 and not last_micro else contextlib.nullcontext()
                with no_sync:
                    with autocast(device, enabled=config.bf16):
                        output = model(**batch)
                    loss = _field(output, "loss")
                    (loss / config.grad_accumulation_steps).backward()
                values = [loss] + [_field(output, name) for name in track]
                logged += torch.stack([v.detach().float() for v in values]) / config.grad_accumulation_steps

            # 4. Clip, set this step's learning rate, update.
            grad_norm = nn.utils.clip_grad_norm_(bare_model.parameters(), config.max_grad_norm or float("inf"))
            if config.max_minutes is None:
                lr = config.learning_rate * lr_multiplier(step, warmup_steps, total_steps)
            else:  # the schedule over the fraction of the time budget spent so far
                spent = int(budget_steps * time_budget_fraction(train_seconds, config.max_minutes))
                lr = config.learning_rate * lr_multiplier(min(spent, budget_steps - 1),
                                                          int(config.warmup_ratio * budget_steps), budget_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_seconds += time.perf_counter() - started
            if config.max_minutes is not None:  # every process stops at the same step
                spent = torch.tensor([time_budget_fraction(train_seconds, config.max_minutes)])
                if world_size > 1:
                    dist.broadcast(spent, 0)
                out_of_time = bool(spent >= 1)
            last_step = step == total_steps or out_of_time

            # 5. Log the mean over processes, evaluate, checkpoint.
            if world_size > 1:
                dist.all_reduce(logged)
                logged /= world_size
            row = {"step": step, "loss": logged[0].item(), "lr": lr, "grad_norm": float(grad_norm)}
            row.update({name: logged[i + 1].item() for i, name in enumerate(track)})
            history.train.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.1e}")
            if last_step or (config.eval_every and step % config.eval_every == 0):
                run_evaluation(step)
            if last_step or (config.checkpoint_every and step % config.checkpoint_every == 0):
                save_checkpoint(step)
            for callback in callbacks:
                callback(step, history)
    except StopTraining:
        save_checkpoint(step)
    finally:
        bar.close()

    if config.load_best_at_end:
        _barrier()
        if checkpoint_dir is not None and (checkpoint_dir / BEST_NAME).is_file():
            load_weights(bare_model, checkpoint_dir / BEST_NAME)
        elif best_in_memory is not None:  # single process without a checkpoint folder
            bare_model.load_state_dict(best_in_memory)
    return history

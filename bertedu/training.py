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

``train`` reads as that list: ``start_run`` (sizes, optimizer, ``resume``, DDP),
``optimizer_step`` (``micro_batches``, ``accumulate_gradients``, clip, update, log),
``evaluation_step`` (``keep_if_best``), ``save_checkpoint``, ``load_best_weights``. Each
takes the ``TrainingRun`` that holds what the steps share.

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
weights of the best evaluation when ``keep_best`` names a metric. Both hold tensors and
plain data only and are read with ``torch.load(..., weights_only=True)``: a ``.pt`` file
that holds anything else (a pickle can run code) or is damaged is a ``UserError``.

The command line keeps each run in a *run folder* (``prepare_run_dir``): a marker file
says the course made it, ``run.json`` describes the run, and a run resumes only a folder
whose description matches; ``--fresh`` empties a run folder and never any other folder.

Several processes
-----------------
Start the same script with ``torchrun --nproc_per_node=N`` (``init_distributed()`` joins
the group: NCCL on GPUs, gloo on CPUs). ``train`` wraps the model in
``DistributedDataParallel``; rank 0 alone evaluates, writes checkpoints and shows the
progress bar; the logged loss is the mean over processes.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from bertedu.errors import UserError
from bertedu.files import (
    TMP_SUFFIX,
    atomic_write,
    remove_stale_temporaries,
    write_json,
    write_text,
)
from bertedu.settings import autocast, evaluating, select_device

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
    cpu_bf16: bool = False              # bf16 autocast for the CPU's training steps too (not its
                                        # evaluations): for CPUs with native bf16 (settings.autocast)
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
# Checkpoints: tensors and plain data only
# ---------------------------------------------------------------------------------------


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through the one atomic writer (``bertedu.files``)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_checkpoint(path: Path, keys: Sequence[str] = ("step", "model")) -> dict[str, Any]:
    """The dict saved in ``last.pt`` or ``best.pt``, which must hold ``keys``.

    Read with ``weights_only=True``: a ``.pt`` file is a pickle, and an ordinary unpickler
    runs whatever code the file names. The weights-only reader accepts tensors, numbers,
    strings, lists and dicts, all a checkpoint needs. Anything else is a ``UserError``.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise _not_a_checkpoint(path, "it holds objects other than tensors and plain data, "
                                      "and reading them could run code") from error
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise _not_a_checkpoint(path, f"it is damaged or not a PyTorch file ({type(error).__name__})") from error
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise _not_a_checkpoint(path, f"it has no {', '.join(missing)}")
    return state


def _not_a_checkpoint(path: Path, problem: str) -> UserError:
    return UserError(f"{path} is not a bertedu training checkpoint: {problem}. Delete it, or start over "
                     "with --fresh (or another --run-dir).")


def load_weights(model: nn.Module, checkpoint: Path) -> dict[str, Any]:
    """Load the model weights of ``last.pt`` or ``best.pt`` into ``model``; return the file's dict."""
    state = read_checkpoint(checkpoint)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as error:
        raise UserError(f"{checkpoint} holds weights that do not fit this model (another run's?). "
                        "Start over with --fresh, or pass another --run-dir.") from error
    return state


# ---------------------------------------------------------------------------------------
# Run folders: what the command line may resume, and what --fresh may delete
# ---------------------------------------------------------------------------------------

RUN_MARKER = ".bertedu-run"      # written into every run folder this project creates
DESCRIPTION_NAME = "run.json"    # the settings of the run, stored when it starts
RUN_FILES = {RUN_MARKER, DESCRIPTION_NAME, CHECKPOINT_NAME, BEST_NAME, HISTORY_NAME}


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` is a run folder this project made: it holds the marker, or (a
    folder from before the marker) only the files a run writes, a checkpoint among them."""
    if (folder / RUN_MARKER).is_file():
        return True
    names = {path.name for path in folder.iterdir()}
    return bool(names & {DESCRIPTION_NAME, CHECKPOINT_NAME}) and all(
        name in RUN_FILES or name.endswith(TMP_SUFFIX) for name in names)


def prepare_run_dir(run_dir: str | Path, description: Mapping[str, Any], fresh: bool) -> None:
    """Make ``run_dir`` ready for the run that ``description`` describes (plain data).

    Call it once the run's arguments are known to be valid. A run resumes only from a
    checkpoint of the *same* run: the description (checkpoint, data sizes, optimisation)
    is stored beside it and compared, since the loop itself can only check the batch size.
    ``fresh=True`` empties the folder first, and only a folder that ``is_run_folder``: any
    other folder with files in it is left as it is, with a ``UserError``.
    """
    run_dir = Path(run_dir)
    description = json.loads(json.dumps(description))  # plain JSON data: tuples become lists
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"The run folder {run_dir} is a file. Pass a new or empty folder as --run-dir.")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_folder(run_dir):
        raise UserError(f"{run_dir} is not a bertedu run folder (it has no {RUN_MARKER} and holds other files), "
                        "so it is left untouched. Pass a new or empty folder as --run-dir.")
    if fresh and run_dir.is_dir():
        _empty_folder(run_dir)
    remove_stale_temporaries(run_dir)
    stored = run_dir / DESCRIPTION_NAME
    if stored.is_file() and _read_description(stored) != description:
        raise UserError(f"{run_dir} holds a run with other settings (see {stored}). "
                        f"Add --fresh to start over, or pass another --run-dir.")
    if not stored.is_file() and (run_dir / CHECKPOINT_NAME).exists():
        raise UserError(f"{run_dir} holds a {CHECKPOINT_NAME} but no {DESCRIPTION_NAME}, so nothing shows it "
                        "comes from this run. Add --fresh to start over, or pass another --run-dir.")
    write_text(run_dir / RUN_MARKER, "A bertedu training run: checkpoints that resume it. "
                                     "--fresh may delete this folder.\n")
    write_json(stored, description)


def _read_description(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error}). Add --fresh to start over, "
                        "or pass another --run-dir.") from error


def _empty_folder(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


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
# ---------------------------------------------------------------------------------------
# The loop, step by step
# ---------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    """What the steps of one ``train`` call share: the loop's variables, by name."""

    model: nn.Module                      # the bare model: clipped, evaluated, saved
    optimizer: torch.optim.Optimizer
    config: TrainingConfig
    device: torch.device
    global_batch: int                     # examples per optimizer step, all processes together
    total_steps: int
    checkpoint_dir: Path | None = None
    rank: int = 0
    world_size: int = 1
    history: TrainingHistory = field(default_factory=TrainingHistory)
    step: int = 0                         # optimizer steps taken so far
    epoch: int = -1                       # the epoch train_data was last set to
    forward_model: nn.Module | None = None  # what batches go through: the model, or DDP around it
    best_weights: dict[str, torch.Tensor] | None = None  # kept in memory when there is no folder
    bar: Any = None                       # the tqdm progress bar
    train_seconds: float = 0.0            # time spent in optimizer steps (for max_minutes)

    @property
    def out_of_time(self) -> bool:
        """Whether ``config.max_minutes`` of training time are spent."""
        return self.config.max_minutes is not None and time_budget_fraction(
            self.train_seconds, self.config.max_minutes) >= 1

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps or self.out_of_time

    def due(self, every: int) -> bool:
        """Whether the step just taken is the last one or a multiple of ``every`` (0: never)."""
        return self.finished or bool(every and self.step % every == 0)


def _field(output: Any, name: str) -> torch.Tensor:
    return output[name] if isinstance(output, Mapping) else getattr(output, name)


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _run_evaluation(model: nn.Module, evaluate: Callable, device: torch.device, bf16: bool) -> dict[str, float]:
    with evaluating(model), autocast(device, enabled=bf16):
        return {name: float(value) for name, value in evaluate(model).items()}


def _is_better(value: float, best: float | None, greater: bool) -> bool:
    return best is None or (value > best if greater else value < best)


def start_run(model: nn.Module, train_data: Sequence[Any], config: TrainingConfig,
              checkpoint_dir: str | Path | None, device: torch.device | None) -> TrainingRun:
    """Sizes, device, optimizer; the state of ``last.pt`` if there is one; DDP; the bar."""
    rank, world_size = _rank_and_world()
    device = device or select_device()
    if device.type == "cuda" and world_size > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    global_batch = config.global_batch_size(world_size)
    steps_per_epoch(len(train_data), global_batch)  # fails early, with advice, on too little data
    model.to(device)
    run = TrainingRun(model, make_optimizer(model, config), config, device, global_batch,
                      config.total_steps(len(train_data), world_size),
                      Path(checkpoint_dir) if checkpoint_dir is not None else None, rank, world_size)
    if run.checkpoint_dir is not None and rank == 0:
        remove_stale_temporaries(run.checkpoint_dir)  # left by a write that was killed
    resume(run)
    # Several processes: DDP averages gradients across them during backward.
    run.forward_model = model if world_size == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    run.forward_model.train()
    run.bar = tqdm(total=run.total_steps, initial=run.step, desc="training",
                   disable=not (config.progress and rank == 0))
    return run


def resume(run: TrainingRun) -> None:
    """Continue from ``last.pt``, if there is one: it holds everything a step depends on."""
    path = run.checkpoint_dir / CHECKPOINT_NAME if run.checkpoint_dir is not None else None
    if path is None or not path.is_file():
        return
    state = load_weights(run.model, path)
    if state.get("global_batch") != run.global_batch:
        raise UserError(
            f"{run.checkpoint_dir} holds a run with a global batch of {state.get('global_batch')}, "
            f"this one has {run.global_batch}: the data order would differ. Use the same "
            "batch settings or a fresh checkpoint_dir."
        )
    try:
        run.optimizer.load_state_dict(state["optimizer"])
        run.history = TrainingHistory.from_dict(state["history"])
        run.step = int(state["step"])
        run.train_seconds = float(state.get("train_seconds", 0.0))
    except (KeyError, TypeError, ValueError) as error:
        raise _not_a_checkpoint(path, f"its optimizer state or history does not fit ({error!r})") from error
    if run.rank == 0:  # printed even without a progress bar, so that a log shows it
        print(f"Resuming from {path} at step {run.step} of {run.total_steps}.", flush=True)


def micro_batches(run: TrainingRun, train_data: Sequence[Any], collate_fn: Callable) -> Iterator[Mapping[str, Any]]:
    """This process's micro-batches of the step's global batch, collated one at a time."""
    epoch, indices = global_batch_indices(run.step, len(train_data), run.global_batch, run.config.seed)
    if epoch != run.epoch and hasattr(train_data, "set_epoch"):
        train_data.set_epoch(epoch)
    run.epoch = epoch
    mine = indices.view(run.world_size, run.config.grad_accumulation_steps, run.config.batch_size)[run.rank]
    return (collate_fn([train_data[i] for i in micro.tolist()]) for micro in mine)


def accumulate_gradients(run: TrainingRun, batches: Iterable[Mapping[str, Any]], track: Sequence[str]) -> torch.Tensor:
    """Forward and backward on each micro-batch, the loss scaled by 1/k so that the summed
    gradient is the gradient of the mean; DDP syncs on the last micro-batch only.

    Returns the mean loss and tracked fields of this process, shape ``(1 + len(track),)``.
    """
    k = run.config.grad_accumulation_steps
    logged = torch.zeros(1 + len(track), device=run.device)
    for micro, batch in enumerate(batches):
        sync = run.world_size == 1 or micro == k - 1
        with contextlib.nullcontext() if sync else run.forward_model.no_sync():
            with autocast(run.device, enabled=run.config.bf16, cpu=run.config.cpu_bf16):
                output = run.forward_model(**_to_device(batch, run.device))
            loss = _field(output, "loss")
            (loss / k).backward()
        values = [loss] + [_field(output, name) for name in track]
        logged += torch.stack([v.detach().float() for v in values]) / k
    return logged


def optimizer_step(run: TrainingRun, train_data: Sequence[Any], collate_fn: Callable, track: Sequence[str]) -> None:
    """One update: gradients of the step's global batch, clip, AdamW at this step's rate, log."""
    config, started = run.config, time.perf_counter()
    batches = micro_batches(run, train_data, collate_fn)
    torch.manual_seed(step_seed(config.seed, run.step, run.rank))  # dropout: replayable on resume
    logged = accumulate_gradients(run, batches, track)
    grad_norm = nn.utils.clip_grad_norm_(run.model.parameters(), config.max_grad_norm or float("inf"))
    lr = config.learning_rate * scheduled_multiplier(run)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.train_seconds += time.perf_counter() - started
    if config.max_minutes is not None and run.world_size > 1:  # every process stops at the same step
        spent = torch.tensor([run.train_seconds], device=run.device)
        dist.broadcast(spent, 0)
        run.train_seconds = float(spent.item())
    if run.world_size > 1:  # log the mean over processes
        dist.all_reduce(logged)
        logged /= run.world_size
    row = {"step": run.step, "loss": logged[0].item(), "lr": lr, "grad_norm": float(grad_norm)}
    run.history.train.append(row | {name: logged[i + 1].item() for i, name in enumerate(track)})
    run.bar.update(1)
    run.bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{lr:.1e}")


def scheduled_multiplier(run: TrainingRun) -> float:
    """The learning-rate multiplier of this step: over steps, or over the time budget spent."""
    config = run.config
    if config.max_minutes is None:
        return lr_multiplier(run.step, config.warmup(run.total_steps), run.total_steps)
    resolution = 1_000_000  # the time schedule, in millionths of the budget
    spent = int(resolution * time_budget_fraction(run.train_seconds, config.max_minutes))
    return lr_multiplier(min(spent, resolution - 1), int(config.warmup_ratio * resolution), resolution)


def evaluation_step(run: TrainingRun, evaluate: Callable[[nn.Module], Mapping[str, float]] | None) -> None:
    """Rank 0 evaluates the bare model and, with ``keep_best``, keeps the best weights."""
    if evaluate is None or run.rank != 0:
        return
    metrics = _run_evaluation(run.model, evaluate, run.device, run.config.bf16)
    row = {"step": run.step, **metrics}
    run.history.evals.append(row)
    if run.config.progress:
        run.bar.write(f"step {run.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if run.config.keep_best is not None:
        keep_if_best(run, row, metrics)


def keep_if_best(run: TrainingRun, row: dict[str, float], metrics: dict[str, float]) -> None:
    """Write ``best.pt`` (or, without a folder, keep a copy in memory) on a new best score."""
    name, config = run.config.keep_best, run.config
    if name not in metrics:
        raise ValueError(f"keep_best={name!r} is not among the metrics {sorted(metrics)}")
    if not _is_better(metrics[name], (run.history.best or {}).get(name), config.greater_is_better):
        return
    run.history.best = row
    if run.checkpoint_dir is not None:
        atomic_save({"step": run.step, "metrics": metrics, "model": run.model.state_dict()},
                    run.checkpoint_dir / BEST_NAME)
    elif config.load_best_at_end:
        run.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}


def save_checkpoint(run: TrainingRun) -> None:
    """Rank 0 writes ``last.pt`` (all a resume needs) and ``history.json``; every rank waits."""
    if run.checkpoint_dir is not None and run.rank == 0:
        atomic_save({"step": run.step, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                     "history": run.history.to_dict(), "config": asdict(run.config),
                     "global_batch": run.global_batch, "world_size": run.world_size,
                     "train_seconds": run.train_seconds},
                    run.checkpoint_dir / CHECKPOINT_NAME)
        write_json(run.checkpoint_dir / HISTORY_NAME, run.history.to_dict())
    _barrier()


def load_best_weights(run: TrainingRun) -> None:
    """Put the best evaluation's weights back into the model (from ``best.pt`` or memory)."""
    _barrier()
    if run.checkpoint_dir is not None and (run.checkpoint_dir / BEST_NAME).is_file():
        load_weights(run.model, run.checkpoint_dir / BEST_NAME)
    elif run.best_weights is not None:  # single process without a checkpoint folder
        run.model.load_state_dict(run.best_weights)


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
    run = start_run(model, train_data, config, checkpoint_dir, device)  # resumes from last.pt
    if config.eval_at_start and run.step == 0:
        evaluation_step(run, evaluate)
    try:
        while not run.finished:
            optimizer_step(run, train_data, collate_fn, track)
            if run.due(config.eval_every):
                evaluation_step(run, evaluate)
            if run.due(config.checkpoint_every):
                save_checkpoint(run)
            for callback in callbacks:
                callback(run.step, run.history)
    except StopTraining:
        save_checkpoint(run)
    finally:
        run.bar.close()
    if config.load_best_at_end:
        load_best_weights(run)
    return run.history

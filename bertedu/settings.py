"""Run settings in one place: quick or full mode, the device, autocast and seeds.

Every chapter starts with ``describe_run()`` so a learner (and CI's log) can see which
mode and device produced the numbers below it.

The quick/full switch
---------------------
``BERTEDU_QUICK=1`` (the default) picks settings that finish every chapter in minutes on
a 2-core laptop; ``BERTEDU_QUICK=0`` picks the real experiment, meant for a GPU. The CLI
flags ``--quick`` / ``--full`` set the same variable for the notebooks they run.
"""
from __future__ import annotations

import contextlib
import functools
import os
import random
from pathlib import Path
from typing import Iterator, TypeVar

import numpy as np
import torch

from bertedu.errors import UserError

QUICK_ENV = "BERTEDU_QUICK"
DEVICE_ENV = "BERTEDU_DEVICE"
DEBUG_ENV = "BERTEDU_DEBUG"

T = TypeVar("T")


def is_quick(quick: bool | None = None) -> bool:
    """``quick`` when given; otherwise True unless ``BERTEDU_QUICK`` is 0/false/no/full/off.

    This is the one place the switch is read: settings functions take ``quick: bool | None``
    and pass it here, so asking for another mode's settings never touches the environment.
    """
    if quick is not None:
        return quick
    value = os.environ.get(QUICK_ENV, "1").strip().lower()
    return value not in {"0", "false", "no", "full", "off"}


def mode_name(quick: bool | None = None) -> str:
    return "quick" if is_quick(quick) else "full"


def set_mode(quick: bool) -> None:
    """Set the switch for this process and for every notebook or process it starts."""
    os.environ[QUICK_ENV] = "1" if quick else "0"


def pick(*, quick: T, full: T, mode: bool | None = None) -> T:
    """Choose a setting by mode: ``n_train = pick(quick=2_000, full=25_000)``.

    ``mode`` is the quick flag a settings function was given (None: ``BERTEDU_QUICK``).
    """
    return quick if is_quick(mode) else full


def select_device(preferred: str | None = None) -> torch.device:
    """The device everything runs on: CUDA if present, else CPU.

    ``preferred`` (or the ``BERTEDU_DEVICE`` environment variable) overrides the choice,
    e.g. ``"cpu"`` to compare speeds on a GPU machine.
    """
    name = preferred or os.environ.get(DEVICE_ENV)
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(
                f"{DEVICE_ENV}={name!r} asks for CUDA, but torch sees no GPU "
                f"(torch {torch.__version__}). Unset it to run on the CPU."
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


@functools.cache
def native_cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX flags; Linux only).

    Elsewhere bf16 on the CPU is emulated and slower than float32, so we say False.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, enabled: bool = True, cpu: bool = False) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU that supports it; a no-op elsewhere unless ``cpu=True``.

    bf16 keeps float32's exponent range, so unlike fp16 it needs no loss scaling.
    On the CPU we stay in float32 by default: CPU bf16 matmuls are slower on most laptops.
    ``cpu=True`` (``TrainingConfig.cpu_bf16``) autocasts there too if the CPU has native
    bf16 instructions (``native_cpu_bf16``): 1.2-1.5x faster pre-training steps on the
    course's AMD EPYC (``benchmarks/pretraining_throughput.txt``); other CPUs stay in float32.
    """
    if enabled and bf16_supported(device):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if enabled and cpu and device.type == "cpu" and native_cpu_bf16():
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cpu_bf16_attention(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """SDPA's plain "math" kernel for attention while a CPU trains under bf16 autocast.

    ``enabled`` is ``TrainingConfig.cpu_bf16``; on a CPU with native bf16 (``autocast``'s
    condition) ``F.scaled_dot_product_attention`` then runs as batched matrix products and a
    softmax instead of the fused CPU flash kernel, whose backward is slow in bf16 at head size 64:
    1.13x-1.16x the pre-training steps of the quick model (``benchmarks/pretraining_throughput.txt``).
    ``bertedu.pretraining.pretrain`` uses it; fine-tuning keeps the kernel torch picks.
    Elsewhere a no-op.
    """
    if enabled and device.type == "cpu" and native_cpu_bf16():
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch generator seeded alike."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def describe_run(device: torch.device | None = None, quick: bool | None = None) -> str:
    """Print and return one line: mode, device, torch version and thread count."""
    device = device or select_device()
    where = device.type
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)}, bf16 autocast {'on' if bf16_supported(device) else 'off'})"
    line = (
        f"bertedu run: {mode_name(quick)} mode ({QUICK_ENV}={'1' if is_quick(quick) else '0'}) | "
        f"device: {where} | torch {torch.__version__} | {torch.get_num_threads()} CPU threads"
    )
    print(line)
    return line


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters."""
    return next(model.parameters()).device


@contextlib.contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and no gradients inside the block; the model's earlier mode after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def value_checks_enabled(tensor: torch.Tensor) -> bool:
    """Whether to check the *values* of an input tensor (ids or labels in range).

    Reading a check's answer back from a GPU makes the host wait for the device in every
    step, so off the CPU value checks run only with ``BERTEDU_DEBUG=1``; shape and dtype
    checks cost nothing and always run.
    """
    return tensor.device.type == "cpu" or os.environ.get(DEBUG_ENV) == "1"

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
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch

QUICK_ENV = "BERTEDU_QUICK"
DEVICE_ENV = "BERTEDU_DEVICE"

T = TypeVar("T")


def is_quick() -> bool:
    """True unless ``BERTEDU_QUICK`` is set to 0/false/no/full."""
    value = os.environ.get(QUICK_ENV, "1").strip().lower()
    return value not in {"0", "false", "no", "full", "off"}


def mode_name() -> str:
    return "quick" if is_quick() else "full"


def set_mode(quick: bool) -> None:
    """Set the switch for this process and for every notebook or process it starts."""
    os.environ[QUICK_ENV] = "1" if quick else "0"


def pick(*, quick: T, full: T) -> T:
    """Choose a setting by mode: ``n_train = pick(quick=2_000, full=25_000)``."""
    return quick if is_quick() else full


def select_device(preferred: str | None = None) -> torch.device:
    """The device everything runs on: CUDA if present, else CPU.

    ``preferred`` (or the ``BERTEDU_DEVICE`` environment variable) overrides the choice,
    e.g. ``"cpu"`` to compare speeds on a GPU machine.
    """
    name = preferred or os.environ.get(DEVICE_ENV)
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"{DEVICE_ENV}={name!r} asks for CUDA, but torch sees no GPU "
                f"(torch {torch.__version__}). Unset it to run on the CPU."
            )
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on a GPU that supports it; a no-op elsewhere.

    bf16 keeps float32's exponent range, so unlike fp16 it needs no loss scaling.
    On the CPU we stay in float32: CPU bf16 matmuls are slower on most laptops.
    """
    if enabled and bf16_supported(device):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch generator seeded alike."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)


def describe_run(device: torch.device | None = None) -> str:
    """Print and return one line: mode, device, torch version and thread count."""
    device = device or select_device()
    where = device.type
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)}, bf16 autocast {'on' if bf16_supported(device) else 'off'})"
    line = (
        f"bertedu run: {mode_name()} mode ({QUICK_ENV}={'1' if is_quick() else '0'}) | "
        f"device: {where} | torch {torch.__version__} | {torch.get_num_threads()} CPU threads"
    )
    print(line)
    return line


@contextlib.contextmanager
def quick_mode(quick: bool) -> Iterator[None]:
    """Temporarily switch mode (for tests and ``mode_settings``)."""
    old = os.environ.get(QUICK_ENV)
    set_mode(quick)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(QUICK_ENV, None)
        else:
            os.environ[QUICK_ENV] = old


def mode_settings(make_settings: Callable[[], T]) -> Callable[..., T]:
    """Decorate a chapter's settings function (written with ``pick``) so that it also takes
    ``quick=True`` or ``quick=False``: the settings of that mode rather than the current one."""

    @functools.wraps(make_settings)
    def settings_for(quick: bool | None = None) -> T:
        if quick is None:
            return make_settings()
        with quick_mode(quick):
            return make_settings()

    return settings_for

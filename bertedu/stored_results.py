"""Readers of benchmark outputs that the course stores instead of re-running them.

Some of chapter 5a's measurements take an hour or more (75 fine-tunes for a five-seed learning
curve); their scripts write text tables to ``benchmarks/`` in the course repository, and the
chapter draws those tables. ``benchmarks/`` sits beside the package in a checkout of the
course, not inside an installed wheel: ``benchmarks_dir()`` is None there, and a notebook prints
``not_installed(name)``, which says where to read the table instead.
"""
from __future__ import annotations

import re
from pathlib import Path

import bertedu


def _levers_winner(arm: str = "as saved|rescaled") -> str:
    """The line of quick_run_levers.txt that names a sweep's winner on chapter 4's run as it is
    today (positions at 0.05, "medium positions"): groups arm, epochs, rate. The arm "as saved"
    is the kind "pretrained", "rescaled" is point 1c."""
    return rf"medium positions, ({arm}): (\d+) epochs at ([\d.e-]+) won"


def benchmarks_dir() -> Path | None:
    """The course repository's ``benchmarks/`` folder, or None when the package is installed
    without it."""
    folder = Path(bertedu.__file__).resolve().parents[1] / "benchmarks"
    return folder if folder.is_dir() else None


def not_installed(name: str) -> str:
    """What a notebook prints in place of the table ``benchmarks/<name>`` when
    ``benchmarks_dir()`` is None: where to read it instead."""
    return f"benchmarks/ is not installed with the package: see benchmarks/{name} in the course repository."


def small_bert_schedules(folder: Path) -> dict[str, tuple[int, float]]:
    """Kind of small-BERT weights -> ``(epochs, peak learning rate)`` that won its validation
    sweep: ``small_bert_sweep.txt`` for every kind, then ``quick_run_levers.txt`` for chapter 4's
    run as it is today ("pretrained": as saved, "rescaled": point 1c), which replaces it."""
    sweep = (folder / "small_bert_sweep.txt").read_text(encoding="utf-8")
    winners = {kind: (int(epochs), float(rate)) for kind, epochs, rate in
               re.findall(r"best on validation, ([\w-]+): (\d+) epochs, lr ([\d.e-]+)", sweep)}
    for arm, epochs, rate in re.findall(_levers_winner(), (folder / "quick_run_levers.txt").read_text(encoding="utf-8")):
        winners["pretrained" if arm == "as saved" else "rescaled"] = (int(epochs), float(rate))
    return winners


def small_bert_curves(folder: Path, seeds: int = 5) -> dict[str, dict[int, list[float]]]:
    """Chapter 5a's learning curve: kind -> labelled training reviews -> test accuracy (%) of
    seeds 0 to ``seeds - 1``, for "random", "new-attention" (chapter 4's run at 0.1 with new
    attention only), "rescaled" (today's run, point 1c) and "shipped".

    200, 500 and 1,000 labels come from ``small_bert_curve.txt``; where several of its tables
    have a kind, the first one gives it. 2,000 labels (quick mode's whole training split) come
    from the ten-seed tables: ``small_bert_seeds.txt`` (its first table) and, for "rescaled", the
    table that follows the winner of its sweep in ``quick_run_levers.txt``.
    """
    curves: dict[str, dict[int, list[float]]] = {"random": {}, "new-attention": {}, "rescaled": {}, "shipped": {}}
    text = (folder / "small_bert_curve.txt").read_text(encoding="utf-8")
    for table in re.split(r"\n(?=[\d,]+ labelled reviews)", text)[1:]:
        n = int(table.split()[0].replace(",", ""))
        for kind, points in curves.items():
            row = re.search(rf"^  {kind} +([\d. ]+?) +mean", table, re.MULTILINE)  # "  random  50.0 ... mean"
            if row:
                points.setdefault(n, [float(a) for a in row.group(1).split()][:seeds])
    rows = [line.split() for line in (folder / "small_bert_seeds.txt").read_text(encoding="utf-8").splitlines()
            if re.match(r" +\d+ ", line)][:seeds]  # seed, then val and test of each kind
    for kind, column in (("random", 2), ("new-attention", 6), ("shipped", 8)):
        curves[kind][2_000] = [float(row[column].rstrip("%")) for row in rows]
    levers = (folder / "quick_run_levers.txt").read_text(encoding="utf-8")
    ten_seeds = re.split(_levers_winner("rescaled"), levers)[-1]
    curves["rescaled"][2_000] = [float(a) for a in re.findall(r"rescaled [\d.]+% val ([\d.]+)% test", ten_seeds)[:seeds]]
    return curves

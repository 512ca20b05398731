"""The timing rules the benchmarks share: the best, or the median, of several repeats."""
from __future__ import annotations

import time
from statistics import median
from typing import Callable


def seconds_of(function: Callable[[], object], repeats: int, warm_up: int = 0) -> list[float]:
    """Seconds of ``repeats`` timed calls, after ``warm_up`` untimed ones (memory allocation,
    kernel selection)."""
    for _ in range(warm_up):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def best_seconds(function: Callable[[], object], repeats: int, warm_up: bool = False) -> float:
    """The shortest of ``repeats`` timed calls: the run least disturbed by the rest of the machine.

    ``warm_up`` makes one untimed call first.
    """
    return min(seconds_of(function, repeats, int(warm_up)))


def median_seconds(function: Callable[[], object], repeats: int = 30, warm_up: int = 3) -> float:
    """The median of ``repeats`` timed calls after ``warm_up`` untimed ones: robust to a few
    disturbed calls on either side."""
    return median(seconds_of(function, repeats, warm_up))

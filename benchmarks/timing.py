"""The one timing rule the benchmarks share: the best of several repeats."""
from __future__ import annotations

import time
from typing import Callable


def best_seconds(function: Callable[[], object], repeats: int, warm_up: bool = False) -> float:
    """The shortest of ``repeats`` timed calls: the run least disturbed by the rest of the machine.

    ``warm_up`` makes one untimed call first (memory allocation, kernel selection).
    """
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)

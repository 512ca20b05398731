"""How long loading IMDb takes: the first load (parse 50,000 files) vs a cached one.

The first load reads the whole compressed stream (gzip's CRC at its end) and checks the
official counts; the cached load checks the source's sha256, the cache's own sha256, the
structure of its records and the counts. Wall time depends on what else the machine runs,
so CPU time (this process) is printed too, with the load average.

Run: BERTEDU_IMDB_ARCHIVE=/path/to/archive .venv/bin/python benchmarks/data_loading.py
Output is saved beside this file as data_loading.txt.
"""
from __future__ import annotations

import os
import platform
import tempfile
import time

import torch

from bertedu import data


def timed_load() -> tuple[float, float]:
    """(wall seconds, CPU seconds) to load both splits."""
    data._MEMO.clear()  # a new process would start with an empty memo too
    wall, cpu = time.perf_counter(), time.process_time()
    for split in data.SPLITS:
        data.load_imdb(split)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(repeats: int = 3) -> None:
    source = data.explicit_source()
    print(f"source: {source}  ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as empty_data_dir:
        os.environ["BERTEDU_DATA_DIR"] = empty_data_dir
        first = []
        for _ in range(repeats):
            data.cache_path().unlink(missing_ok=True)
            first.append(timed_load())
        cached = [timed_load() for _ in range(repeats)]
        size = data.cache_path().stat().st_size
    for what, times in [("first load (parse and verify archive, write cache)", first),
                        ("cached load (sha256 of source and cache, check records)", cached)]:
        print(f"{what}: best {min(w for w, _ in times):.2f} s wall, {min(c for _, c in times):.2f} s CPU, of {repeats}")
    print(f"speed-up (CPU): {min(c for _, c in first) / min(c for _, c in cached):.1f}x; cache file {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

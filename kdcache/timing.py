"""Wall-clock timing of a callable: the one warm-up-then-time loop behind every latency figure."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def timed_seconds(run: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Wall seconds of each of `repeats` calls of `run`, after `warmup` untimed ones (which let allocators, caches
    and lazy initialisation settle). `run` must itself wait for any device work it starts."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def median_seconds(run: Callable[[], object], repeats: int, warmup: int) -> float:
    """The median of `timed_seconds`: steadier than the mean on a machine that other work interrupts."""
    return statistics.median(timed_seconds(run, repeats, warmup))

"""Wall-clock timing of a callable: the one warm-up-then-time loop behind every latency figure, and the machine load
that every printed latency or FPS figure carries (`machine_load`, `warn_if_busy`)."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
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


# -- the context every latency or FPS figure is printed with ------------------------------------------------------
# A figure timed while other work queues for the cores measures the queue as much as the model (the same student
# read 3051.8 ms, 754.8 ms and 13.7 ms within two minutes on a busy machine): every printed latency or FPS says
# how busy the machine was, and a machine busier than it has cores gets a warning that its figures do not compare.

@dataclass(frozen=True)
class MachineLoad:
    load_1min: float | None  # the 1-minute load average (None where the OS keeps none)
    cores: int

    @property
    def busy(self) -> bool:
        """More runnable work than cores: timings then include waiting for a core."""
        return self.load_1min is not None and self.load_1min > self.cores

    def describe(self) -> str:
        """`load average 4.82 on 2 cores`, plus `(busier than its cores)` when it is."""
        load = "unknown" if self.load_1min is None else f"{self.load_1min:.2f}"
        return f"load average {load} on {self.cores} cores" + (" (busier than its cores)" if self.busy else "")

    def as_dict(self) -> dict:
        return {"load_1min": self.load_1min, "cores": self.cores, "busy": self.busy}

    @classmethod
    def from_dict(cls, data: dict) -> "MachineLoad":
        return cls(data.get("load_1min"), int(data.get("cores") or 1))


def busiest(records) -> MachineLoad | None:
    """The busiest of some `MachineLoad.as_dict()` records (None among them skipped; None if there are none): the
    one line of context for a table of figures timed one after another."""
    loads = [MachineLoad.from_dict(record) for record in records if record]
    return max(loads, key=lambda load: (load.busy, load.load_1min or 0.0), default=None)


def machine_load() -> MachineLoad:
    """The machine's load now: sample it right after timing, when it describes the figures."""
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows has no load average
        load = None
    return MachineLoad(load, os.cpu_count() or 1)


def warn_if_busy(load: MachineLoad) -> None:
    """One yellow line on stderr when `load.busy`: the figures printed with it cannot be compared with others."""
    from kdcache.console import log

    if load.busy:
        log(f"[yellow]warning:[/] {load.describe()}: these latency and FPS figures include waiting for a core "
            "and do not compare with an idle machine's; rerun when it is quieter")


def print_load() -> MachineLoad:
    """For scripts that print timings on stdout (bench/): `timed at <load>` after them, and `warn_if_busy`."""
    load = machine_load()
    print(f"timed at {load.describe()}", flush=True)
    warn_if_busy(load)
    return load

"""The batch loop of a precompute run: launch ahead, finish in order, hand whole shards to the writer.

Batches come from one loader over every split (workers decode and resize). Batch k+1 and k+2 are launched
on the teacher's device before batch k is finished on the host, so the device always has queued work while
the host checks batch k, assembles its shard and hands complete shards to the writer's threads. The only
place the host waits for the device is `Download.wait()` of the batch it is about to finish.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

from kdcache.console import log, progress
from kdcache.errors import KdcacheError
from kdcache.store.layout import shard_range

LOOKAHEAD = 2  # batches launched ahead of the one being finished
MAX_LOGGED_PROBLEMS = 20


@dataclass
class SplitRun:
    """What the loop needs to know about one split of the run."""

    spec: str
    group: str
    count: int
    strict: bool
    todo: list[int]
    total: int  # samples in the todo shards
    stats: dict = field(default_factory=lambda: {"unreadable": 0, "teacher_bad": 0})


class Stream:
    """Runs batches through the teacher (`maker`, None for `--teacher none`) into the `writer`."""

    def __init__(self, splits: list[SplitRun], shard_size: int, maker, writer):
        self.splits, self.shard_size, self.maker, self.writer = splits, shard_size, maker, writer
        self.pending: dict[tuple[int, int], list[dict]] = defaultdict(list)
        self.busy_s = 0.0
        self.images = 0

    def run(self, batches, skip: set[tuple[int, int]] = frozenset()) -> None:
        """Process `batches` (collated, in order); shards in `skip` ((split, shard) another run finished) are
        dropped."""
        inflight: deque = deque()
        start = time.perf_counter()
        with progress(unit="img", fields=("busy",)) as bar:
            tasks = {i: bar.add_task(split.spec, total=split.total, busy="") for i, split in enumerate(self.splits)}
            for batch in batches:
                if (batch["split"], int(batch["index"][0]) // self.shard_size) in skip:
                    continue
                inflight.append((batch, self._launch(batch)))
                if len(inflight) > LOOKAHEAD:
                    self._finish(*inflight.popleft(), bar, tasks, start)
            while inflight:
                self._finish(*inflight.popleft(), bar, tasks, start)
        for split in self.splits:
            log(f"{split.spec}: wrote {len(split.todo)} shards ({split.total} samples); unreadable "
                f"{split.stats['unreadable']}, teacher output not finite {split.stats['teacher_bad']}")

    def busy_share(self, wall_s: float) -> float:
        return self.busy_s / wall_s if wall_s > 0 else 0.0

    def _launch(self, batch: dict):
        if self.maker is None:
            return None
        return self.maker.launch(batch["image"], key=(batch["split"], *batch["index"].tolist()))

    def _finish(self, batch: dict, download, bar, tasks, start: float) -> None:
        split = self.splits[batch["split"]]
        readable = np.asarray(batch["readable"], dtype=bool)
        self._check_readable(split, batch, readable)
        record = {"image": _numpy(batch["image"]), "ids": np.asarray(batch["id"], dtype=str), "readable": readable}
        if "gt" in batch:
            record["gt"], record["valid"] = _numpy(batch["gt"]), _numpy(batch["valid"])
        if download is not None:
            outputs, problems = self.maker.finish(download.wait(), readable)
            self.busy_s += download.busy_seconds()
            for position, reason in problems.items():
                _report(split.stats, "teacher_bad", f"{split.spec}: sample {batch['id'][position]!r} marked "
                                                    f"invalid: {reason}")
            record.update(outputs)
        self._collect(batch["split"], split, int(batch["index"][0]), record)
        self.images += len(readable)
        share = self.busy_share(time.perf_counter() - start)
        busy = f"teacher busy {share:.0%}" if self.maker is not None else ""
        bar.update(tasks[batch["split"]], advance=len(readable), busy=busy)

    def _check_readable(self, split: SplitRun, batch: dict, readable: np.ndarray) -> None:
        for position in np.flatnonzero(~readable):
            reason = batch["reason"][position]
            if split.strict:
                raise KdcacheError(f"{split.spec}: unreadable sample {reason}: fix or remove it, or pass --no-strict "
                                   "to skip it")
            _report(split.stats, "unreadable", f"{split.spec}: skipping unreadable sample "
                                               f"{int(batch['index'][position])}: {reason}")

    def _collect(self, position: int, split: SplitRun, first: int, record: dict) -> None:
        """Add a finished batch to its shard; a complete shard goes to the writer."""
        shard = first // self.shard_size
        parts = self.pending[(position, shard)]
        parts.append(record)
        start, stop = shard_range(shard, split.count, self.shard_size)
        if sum(len(part["ids"]) for part in parts) == stop - start:
            del self.pending[(position, shard)]
            # the batches' arrays as they are: the writer encodes sample by sample, so no shard-sized copy is made
            self.writer.submit(split.group, shard, start, {key: [part[key] for part in parts] for key in parts[0]})


def _numpy(value) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _report(stats: dict, key: str, message: str) -> None:
    stats[key] += 1
    if stats[key] <= MAX_LOGGED_PROBLEMS:
        log(f"[yellow]warning:[/] {message}")
    elif stats[key] == MAX_LOGGED_PROBLEMS + 1:
        log(f"[yellow]warning:[/] more {key} samples; only counts are reported from now on")

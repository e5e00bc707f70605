"""Mixed-source batches straight from the cache: block-shuffled whole-shard reads, no teacher.

Every source (a split of the store) is read as an endless stream: each source epoch the store's
`shuffled_blocks(seed, epoch, rank, world_size)` gives this rank's blocks in random order; groups of
`window_blocks` consecutive blocks form a *window* that is read in one go (contiguous reads are the fast
path) and shuffled in memory. Memory is bounded by the window, never by the cache size.

Batches have a fixed layout: `counts[source]` rows from each source, in source order. Data loader
workers own *lanes*: step `s` is built from lane `s % lanes` (lanes = max(1, workers)), whose stream
takes every `lanes`-th window. The order is therefore a pure function of (seed, rank, world size,
lanes), and resuming at step `s` just skips each lane's streams to `(s // lanes) * count` samples.
Augmentation parameters come from a generator keyed on (seed, rank, step), independent of workers.
With `workers=0` the main process serves all lanes itself and yields exactly the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from kdcache.errors import KdcacheError
from kdcache.store.reader import DamagedShardError, StoredSplit
from kdcache.train.augment import augment_batch, sample_params
from kdcache.train.train_config import AugmentConfig


@dataclass
class SourcePlan:
    """What to read from one source: its split in the store, rows per batch and stored fields."""

    name: str
    split: str
    count: int
    fields: list[str]
    gt_metric: bool = False  # GT is metric depth (scaled by crop zoom); False for disparity GT
    size: int = 0


@dataclass
class LoaderPlan:
    store_url: str
    sources: list[SourcePlan]
    resolution: tuple[int, int]
    feature_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # layer -> (C, h, w)
    teacher_metric: bool = False
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    lanes: int = 1
    window_blocks: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def _open_split(url: str, name: str):
    from kdcache.store import open_store

    return open_store(url).split(name)


class SourceStream:
    """Endless, resumable sample stream of one source for one (rank, lane)."""

    def __init__(self, split, seed: int, rank: int, world_size: int, lane: int, lanes: int, window_blocks: int,
                 fields: list[str]):
        self.split, self.seed, self.rank, self.world_size = split, seed, rank, world_size
        self.lane, self.lanes, self.window_blocks, self.fields = lane, lanes, window_blocks, fields

    def windows(self) -> Iterator[tuple[int, int, list[tuple[int, int]]]]:
        """(epoch, window index, blocks) of this lane, forever."""
        counter = 0
        epoch = 0
        while True:
            blocks = list(self.split.shuffled_blocks(self.seed, epoch, rank=self.rank, world_size=self.world_size))
            if not blocks and epoch == 0:
                raise KdcacheError(
                    f"split '{self.split.spec}' has too few blocks for {self.world_size} ranks: "
                    "use fewer processes or re-create the cache with smaller shards"
                )
            for index in range(0, len(blocks), self.window_blocks):
                if counter % self.lanes == self.lane:
                    yield epoch, index, blocks[index:index + self.window_blocks]
                counter += 1
            epoch += 1

    def rows(self, skip: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Samples one by one (dicts of arrays), after skipping `skip` of them without reading."""
        for epoch, index, blocks in self.windows():
            size = sum(stop - start for start, stop in blocks)
            if skip >= size:
                skip -= size
                continue
            order = np.random.default_rng([self.seed, epoch, index]).permutation(size)
            data = self._read(blocks)
            for row in order[skip:]:
                yield {key: value[row] for key, value in data.items()}
            skip = 0

    def _read(self, blocks: list[tuple[int, int]]) -> dict[str, np.ndarray]:
        parts = [read_checked(self.split, start, stop, self.fields) for start, stop in blocks]
        return {key: np.concatenate([p[key] for p in parts]) for key in self.fields}


class CachedBatches(IterableDataset):
    """Yields `(step, batch)` for steps `[start_step, stop_step)`; see the module docstring."""

    def __init__(self, plan: LoaderPlan, start_step: int, stop_step: int):
        super().__init__()
        self.plan, self.start_step, self.stop_step = plan, start_step, stop_step

    def __iter__(self):
        info = get_worker_info()
        plan = self.plan
        if info is None:  # in the main process: serve every lane, interleaved as workers would be
            lanes = range(plan.lanes)
            first = self.start_step
            stride = 1
        else:
            if info.num_workers != plan.lanes:
                raise RuntimeError(f"loader built for {plan.lanes} lanes but run with {info.num_workers} workers")
            # Workers are polled in order from 0, so worker w owns the steps start + w, start + w + lanes, ...
            lanes = [(self.start_step + info.id) % plan.lanes]
            first = self.start_step + info.id
            stride = plan.lanes
        splits = [_open_split(plan.store_url, s.split) for s in plan.sources]  # opened after the worker fork
        streams = {lane: self._lane_streams(splits, lane) for lane in lanes}
        for step in range(first, self.stop_step, stride):
            lane_streams = streams[step % plan.lanes]
            rows = {s.name: [next(lane_streams[s.name]) for _ in range(s.count)] for s in plan.sources}
            yield step, self.assemble(step, rows)

    def _lane_streams(self, splits, lane: int) -> dict[str, Iterator[dict[str, np.ndarray]]]:
        """Each source's stream for `lane`, skipped to the first step of this loader in that lane."""
        plan = self.plan
        first_in_lane = next(s for s in range(self.start_step, self.start_step + plan.lanes) if s % plan.lanes == lane)
        streams = {}
        for index, (source, split) in enumerate(zip(plan.sources, splits)):
            stream = SourceStream(split, plan.seed + 7919 * index, plan.rank, plan.world_size, lane, plan.lanes,
                                  plan.window_blocks, source.fields)
            streams[source.name] = stream.rows(skip=(first_in_lane // plan.lanes) * source.count)
        return streams

    def assemble(self, step: int, rows: dict[str, list[dict[str, np.ndarray]]]) -> dict[str, Any]:
        plan = self.plan
        batch = collate(plan, rows)
        rng = np.random.default_rng([plan.seed, plan.rank, step, 0xA46])
        params = sample_params(rng, len(batch["source"]), plan.augment)
        metric = {"gt": batch.pop("gt_metric"), "teacher": torch.full_like(batch["has_gt"], plan.teacher_metric)}
        tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() == 4}
        augment_batch(tensors, params, metric)
        batch.update(tensors)
        return batch


def collate(plan: LoaderPlan, rows: dict[str, list[dict[str, np.ndarray]]]) -> dict[str, torch.Tensor]:
    """Stack rows of all sources into one batch; fields a source lacks are zero and flagged invalid."""
    height, width = plan.resolution
    size = sum(len(r) for r in rows.values())
    batch = {
        "image": torch.empty(size, 3, height, width),
        "source": torch.empty(size, dtype=torch.long),
        "has_gt": torch.zeros(size, dtype=torch.bool),
        "teacher_ok": torch.zeros(size, dtype=torch.bool),
        "gt_metric": torch.zeros(size, dtype=torch.bool),
    }
    wants = {f for s in plan.sources for f in s.fields}
    if "teacher" in wants:
        batch["teacher"] = torch.zeros(size, 1, height, width)
    if "gt" in wants:
        batch["gt"] = torch.zeros(size, 1, height, width)
        batch["valid"] = torch.zeros(size, 1, height, width, dtype=torch.bool)
    for key in wants:
        if key.startswith("features/"):
            batch[key] = torch.zeros(size, *plan.feature_shapes[key.split("/", 1)[1]])
    row = 0
    for index, source in enumerate(plan.sources):
        block = rows[source.name]
        n = len(block)
        if n == 0:
            continue
        stacked = {key: np.stack([r[key] for r in block]) for key in source.fields}
        sl = slice(row, row + n)
        batch["image"][sl] = torch.from_numpy(stacked["image"]).permute(0, 3, 1, 2).float().div_(255.0)
        batch["source"][sl] = index
        if "teacher" in stacked:
            batch["teacher"][sl, 0] = torch.from_numpy(stacked["teacher"].astype(np.float32))
            batch["teacher_ok"][sl] = torch.from_numpy(stacked["teacher_ok"].astype(bool))
        if "gt" in stacked:
            batch["gt"][sl, 0] = torch.from_numpy(stacked["gt"].astype(np.float32))
            batch["valid"][sl, 0] = torch.from_numpy(stacked["valid"].astype(bool))
            batch["has_gt"][sl] = True
            batch["gt_metric"][sl] = source.gt_metric
        for key in source.fields:
            if key.startswith("features/"):
                batch[key][sl] = torch.from_numpy(stacked[key].astype(np.float32))
        if "readable" in stacked:
            # A sample precompute could not decode is stored blank: it must not teach anything.
            unreadable = torch.from_numpy(~stacked["readable"].astype(bool))
            batch["has_gt"][sl] &= ~unreadable
            batch["teacher_ok"][sl] &= ~unreadable
        row += n
    return batch


PREFETCH = 4  # batches each worker prepares ahead


def make_loader(plan: LoaderPlan, start_step: int, stop_step: int, workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader over `CachedBatches`; `workers` must be `plan.lanes` or 0 (the same batches, in-process)."""
    dataset = CachedBatches(plan, start_step, stop_step)
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH if workers else None,
        persistent_workers=False,
        multiprocessing_context="spawn" if workers and torch.cuda.is_initialized() else None,
    )


def read_checked(split: StoredSplit, start: int, stop: int, fields: list[str]) -> dict[str, np.ndarray]:
    """`split.read`, where a damaged shard is one line naming it and the exact command that repairs it."""
    from kdcache.precompute.precompute_config import repair_command

    try:
        return split.read(start, stop, fields)
    except DamagedShardError as err:
        command = repair_command(split.url, split.manifest, [split.spec])
        raise KdcacheError(f"{err.where}: repair it with `{command}` (`kdcache cache verify {split.url}` lists "
                           "every damaged shard)") from None


def iter_validation(url: str, split_name: str, max_samples: int, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Contiguous, unaugmented batches of (image, gt, valid) from the first `max_samples` of a split."""
    split = _open_split(url, split_name)
    total = min(len(split), max_samples) if max_samples else len(split)
    for start in range(0, total, batch_size):
        data = read_checked(split, start, min(total, start + batch_size), ["image", "gt", "valid"])
        yield {
            "image": torch.from_numpy(data["image"]).permute(0, 3, 1, 2).float().div_(255.0),
            "gt": torch.from_numpy(data["gt"].astype(np.float32)).unsqueeze(1),
            "valid": torch.from_numpy(data["valid"].astype(bool)).unsqueeze(1),
        }

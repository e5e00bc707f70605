"""Decoding and resizing in DataLoader workers, in shard-aligned batches, over every split of a run.

Batches never straddle shards: a shard's samples always go through the teacher in the same batches,
whether the run is fresh, resumed after a kill, or split over `--shard i/N` processes, so every run
produces the same numbers. Unreadable samples come back as zero records with `readable = False` and
the reason, and the main thread decides (skip and count, or stop on labeled/strict splits).

One loader serves all the splits of a run (a batch never straddles splits either), so the workers decode the
next split while the teacher finishes the last one; it is started before the teacher is loaded.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kdcache.errors import BadSampleError
from kdcache.precompute.resize import resize_image, resize_nearest
from kdcache.store.layout import shard_range


class ResizedSamples(Dataset):
    """A split seen at the cache resolution: index -> record dict of numpy arrays."""

    def __init__(self, split, resolution: tuple[int, int], labeled: bool):
        self.split, self.resolution, self.labeled = split, tuple(resolution), labeled

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict:
        height, width = self.resolution
        try:
            sample = self.split[index]
            record = {"index": index, "id": str(sample.id), "readable": True, "reason": "",
                      "image": resize_image(sample.image, self.resolution)}
            if self.labeled:
                if sample.depth is None:
                    raise BadSampleError(sample.id, "labeled split returned a sample without ground truth")
                valid = sample.valid if sample.valid is not None else np.isfinite(sample.depth) & (sample.depth > 0)
                record["gt"] = resize_nearest(sample.depth.astype(np.float32), self.resolution)
                record["valid"] = resize_nearest(valid.astype(bool), self.resolution)
        except BadSampleError as err:
            record = {"index": index, "id": "", "readable": False, "reason": str(err),
                      "image": np.zeros((height, width, 3), np.uint8)}
            if self.labeled:
                record["gt"] = np.zeros((height, width), np.float32)
                record["valid"] = np.zeros((height, width), bool)
        if self.labeled:
            record["valid"] = record["valid"] & np.isfinite(record["gt"])
            record["gt"] = np.where(record["valid"], record["gt"], 0).astype(np.float32)
        return record


class RunSamples(Dataset):
    """All splits of a run: key `(split position, index)` -> that split's record, tagged with `split`."""

    def __init__(self, splits: list[ResizedSamples]):
        self.splits = splits

    def __len__(self) -> int:
        return sum(len(split) for split in self.splits)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        position, index = key
        return dict(self.splits[position][index], split=position)


def collate_records(records: list[dict]) -> dict:
    """Stack records into batches. Maps become torch tensors so worker processes hand them over through
    shared memory instead of pickling megabytes through a pipe; `.numpy()` on them is free."""
    batch = {key: [r[key] for r in records] for key in records[0]}
    for key in ("image", "gt", "valid"):
        if key in batch:
            batch[key] = torch.from_numpy(np.stack(batch[key]))
    batch["index"] = np.asarray(batch["index"], dtype=np.int64)
    if "split" in batch:
        batch["split"] = int(batch["split"][0])
    batch["readable"] = np.asarray(batch["readable"], dtype=bool)
    return batch


RAMP_FIRST = 4  # images in shard 0's first batch; the next ones double until they reach the batch size


def shard_batches(shards: Sequence[int], count: int, shard_size: int, batch_size: int) -> list[list[int]]:
    """Index batches covering `shards` in order, each inside one shard; shard 0 starts with a ramp (4, 8, 16, ...)."""
    batches = []
    for shard in shards:
        start, stop = shard_range(shard, count, shard_size)
        ranges = [list(range(i, min(i + batch_size, stop))) for i in range(start, stop, batch_size)]
        batches += ramp_up(ranges[0]) + ranges[1:] if shard == 0 and ranges else ranges
    return batches


def ramp_up(batch: list) -> list[list]:
    """`batch` as pieces of RAMP_FIRST, 2x, 4x, ... indices (the last takes the rest).

    Why: the device sits idle until a run's first batch is decoded; a few images are decoded sooner than a whole
    batch, and while the device runs them the workers decode the next, larger pieces (measured with the emulated
    teacher: docs/benchmarks.md). It is shard 0's, not the run's, first batch, so every shard goes through the
    teacher in the same batches whether the run is fresh, resumed or split with `--shard i/N`."""
    pieces, start, size = [], 0, RAMP_FIRST
    while start < len(batch):
        pieces.append(batch[start:start + size])
        start, size = start + size, size * 2
    return pieces


def run_batches(todo: dict[int, list[int]], counts: list[int], shard_size: int, batch_size: int) -> list[list]:
    """Keys `(split, index)` of every batch of the `todo` shards of each split, in split then index order."""
    batches = []
    for position, shards in todo.items():
        for indices in shard_batches(shards, counts[position], shard_size, batch_size):
            batches.append([(position, index) for index in indices])
    return batches


PREFETCH = 4  # batches each worker decodes ahead of the teacher


def make_loader(dataset: Dataset, batches: list[list], workers: int, pin_memory: bool = False) -> DataLoader:
    """Workers decode and resize ahead of the teacher (PREFETCH batches each in flight); pinned for a CUDA teacher."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate_records,
        prefetch_factor=PREFETCH if workers > 0 else None,
        pin_memory=pin_memory,
        persistent_workers=False,
    )

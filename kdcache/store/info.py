"""`store_info(url)`: what a cache holds, how big it is and how complete, for `kdcache cache info`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kdcache.store.backend import use_remote
from kdcache.store.reader import CacheStore, open_store


@dataclass
class FieldInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    raw_bytes: int
    stored_bytes: int


@dataclass
class SplitInfo:
    spec: str
    group: str
    count: int
    labeled: bool
    space: str | None
    shards_done: int
    shards_total: int
    unreadable: int
    teacher_bad: int
    written: int
    fields: list[FieldInfo] = field(default_factory=list)

    @property
    def stored_bytes(self) -> int:
        return sum(f.stored_bytes for f in self.fields)

    @property
    def raw_bytes(self) -> int:
        return sum(f.raw_bytes for f in self.fields)

    @property
    def bytes_per_sample(self) -> float:
        return self.stored_bytes / max(1, self.written)

    @property
    def compression(self) -> float:
        return self.raw_bytes / max(1, self.stored_bytes)


def split_info(store: CacheStore, spec: str) -> SplitInfo:
    split = store.split(spec)
    done, total = split.shards_done()
    flags = split.read(fields=[f for f in ("readable", "teacher_ok") if f in split.fields])
    written = np.zeros(len(split), bool)
    done_flags = np.asarray(split.array("shard_done")[:], bool)
    for shard in np.flatnonzero(done_flags):
        written[shard * split.shard_size:(shard + 1) * split.shard_size] = True
    unreadable = int((written & ~flags["readable"]).sum())
    teacher_bad = int((written & flags["readable"] & ~flags["teacher_ok"]).sum()) if "teacher_ok" in flags else 0
    info = SplitInfo(spec, split.group, len(split), split.labeled, split.space, done, total, unreadable, teacher_bad,
                     int(written.sum()))
    for name in split.fields:
        array = split.array(name)
        itemsize = 16 if name == "ids" else np.dtype(str(array.dtype)).itemsize  # ids: nominal bytes per id
        raw = int(np.prod(array.shape[1:])) * itemsize * int(written.sum())  # raw bytes of what is written
        info.fields.append(FieldInfo(name, tuple(array.shape), str(array.dtype), int(raw), int(array.nbytes_stored())))
    return info


def store_manifest(url: str, storage_options: dict | None = None) -> dict:
    use_remote(url, storage_options)
    return open_store(url).manifest


def store_info(url: str, storage_options: dict | None = None) -> tuple[CacheStore, list[SplitInfo]]:
    use_remote(url, storage_options)
    store = open_store(url)
    return store, [split_info(store, spec) for spec in store.splits]

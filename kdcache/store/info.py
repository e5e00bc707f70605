"""`store_info(url)`: what a cache holds, how big it is and how complete, for `kdcache cache info`.

Complete means every shard is marked done *and* its files are there with intact indexes (`integrity.check_split`
at the "index" level: the end of each file only); `kdcache cache verify` reads every chunk."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kdcache.store.backend import use_remote
from kdcache.store.integrity import check_split
from kdcache.store.layout import shard_range
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
    damaged: list[str] = field(default_factory=list)  # the damage found, one entry per damaged file
    damaged_shards: int = 0
    fields: list[FieldInfo] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards_total and not self.damaged

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
    integrity = check_split(split, "index")
    damaged = set(integrity.damaged_shards)
    names = [f for f in ("readable", "teacher_ok") if f in split.fields]
    written = np.zeros(len(split), bool)
    flags = {name: np.zeros(len(split), bool) for name in names}
    for shard in np.flatnonzero(split.done_flags()):
        start, stop = shard_range(int(shard), len(split), split.shard_size)
        written[start:stop] = True
        if shard not in damaged:  # a damaged shard's flags may not read; it is counted as damaged instead
            for name, values in split.read(start, stop, names).items():
                flags[name][start:stop] = values
    unreadable = int((written & ~flags["readable"]).sum())
    teacher_bad = int((written & flags["readable"] & ~flags["teacher_ok"]).sum()) if "teacher_ok" in flags else 0
    info = SplitInfo(spec, split.group, len(split), split.labeled, split.space, done, total, unreadable, teacher_bad,
                     int(written.sum()), [str(d) for d in integrity.damage], len(damaged))
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

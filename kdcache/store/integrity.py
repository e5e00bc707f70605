"""Is every shard marked done really there, and does every checksum hold? Modelled on borg's and restic's
`check --read-data`: every file of every done shard is read whole (one GET each, through the store's zarr backend,
so s3:// works like a local path), and each damaged piece is named: split, shard, array and what is wrong.

Two levels:
- `"data"` (`kdcache cache verify`, precompute's repair on a rerun): every byte, every checksum: the shard index's
  CRC32C and each chunk's (each chunk's Blosc header too), at disk speed (nothing is decoded);
- `"index"` (`kdcache cache info`): each file's presence, size and index only (its last ~1 KiB), so a missing,
  truncated or overwritten file is seen without reading the data.

A done shard has a file in every array (the writer stores even an all-fill one), so a missing file is damage.
Stores written before chunks carried checksums are checked as far as they can be (`coverage_notes` says what was
not): their shard indexes only, and their per-sample flags (`ids`, `readable`, `teacher_ok`) not at all for
presence, since zarr left out a chunk that was all fill value.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import zarr
from zarr.abc.store import SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

from kdcache.store.reader import StoredSplit
from kdcache.store.shardread import (
    DamagedFile,
    MissingFile,
    check_shard_file,
    checksum_holds,
    chunk_checksums,
    chunk_path,
    fast_path,
    file_bytes,
    index_bytes,
    parse_index,
    read_with_zarr,
    shard_length,
)
from kdcache.store.layout import shard_range

LEVELS = ("index", "data")
THREADS = 8  # files read at once: overlaps GET latency on object stores; local reads are disk-bound anyway


@dataclass(frozen=True)
class Damage:
    """One damaged piece: the file of `array` for shard `shard` of split `spec`."""

    spec: str
    shard: int
    array: str
    reason: str

    def __str__(self) -> str:
        return f"{self.spec}: shard {self.shard}, {self.array}: {self.reason}"


@dataclass
class SplitIntegrity:
    spec: str
    shards_checked: int = 0
    files: int = 0
    bytes_read: int = 0
    damage: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def damaged_shards(self) -> list[int]:
        return sorted({d.shard for d in self.damage})


def check_split(split: StoredSplit, level: str = "data", shards: list[int] | None = None,
                advance: Callable[[int], None] | None = None) -> SplitIntegrity:
    """Check the files of the done shards of `split` (of `shards` only, when given) at `level`; `advance(samples)`
    is called after each shard (a progress bar)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")
    done = split.done_flags()
    todo = [s for s in (range(len(done)) if shards is None else shards) if done[s]]
    arrays = {name: split.array(name) for name in split.fields}
    report = SplitIntegrity(split.spec, shards_checked=len(todo), notes=coverage_notes(split.spec, arrays, level))

    def check_shard(shard: int) -> list[tuple[str, str | None, int]]:
        found = [(name, *_check_file(array, shard, level)) for name, array in arrays.items()]
        if advance is not None:
            start, stop = shard_range(shard, len(split), split.shard_size)
            advance(stop - start)
        return found

    with ThreadPoolExecutor(THREADS, thread_name_prefix="kdcache-check") as pool:
        for shard, found in zip(todo, pool.map(check_shard, todo)):
            for name, reason, nbytes in found:
                report.files += 1
                report.bytes_read += nbytes
                if reason is not None:
                    report.damage.append(Damage(split.spec, shard, name, reason))
    return report


def _check_file(array: zarr.Array, shard: int, level: str) -> tuple[str | None, int]:
    """(what is wrong with the file of `shard` of `array`, or None; bytes read)."""
    store = array.store_path.store
    first = shard * shard_length(array)
    key = chunk_path(array, first)
    try:
        if fast_path(array):
            if level == "index":
                return _check_index(store, key, array.shards[0])
            raw = file_bytes(store, key)
            if raw is None:
                raise MissingFile("missing file")
            check_shard_file(array, raw)
            return None, raw.size
        if not array.shards and chunk_checksums(array):  # per-sample flags: one small chunk per shard
            raw = file_bytes(store, key)
            if raw is None:
                raise MissingFile("missing file")
            if level == "data" and not checksum_holds(raw):
                raise DamagedFile("bad chunk checksum")
            return None, raw.size
        if level == "data":  # a layout without checksums (older stores): it must at least decode
            read_with_zarr(array, first, min(array.shape[0], first + shard_length(array)))
        return None, 0
    except DamagedFile as err:
        return str(err), 0


def _check_index(store, key: str, shard_len: int) -> tuple[str | None, int]:
    """Presence, size and index of one shard file, reading only its end."""
    sync = zarr.core.sync.sync
    try:
        size = sync(store.getsize(key))
    except FileNotFoundError:
        raise MissingFile("missing file") from None
    end = SuffixByteRequest(index_bytes(shard_len))
    tail = sync(store.get(key, prototype=default_buffer_prototype(), byte_range=end))
    if tail is None:
        raise MissingFile("missing file")
    tail = tail.as_numpy_array().view(np.uint8).reshape(-1)
    parse_index(tail, size, shard_len)
    return None, tail.size


def coverage_notes(spec: str, arrays: dict[str, zarr.Array], level: str) -> list[str]:
    """What a check of these arrays at `level` cannot see (stores written before chunks carried checksums, the
    index level), in words for the user."""
    notes = []
    old = [name for name, array in arrays.items() if not chunk_checksums(array)]
    if old:
        notes.append(f"{spec}: {', '.join(old)} were written before every chunk carried a checksum: a changed byte "
                     "inside a chunk cannot be seen there, and a missing per-sample flag file reads as all empty; "
                     "precompute into a new --out to get a store that is checked throughout")
    if level == "index":
        notes.append(f"{spec}: only the files' presence and indexes were checked: `kdcache cache verify` reads "
                     "every chunk")
    return notes

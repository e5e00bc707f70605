"""Reading a kdcache store: `open_store(url) -> CacheStore`, `store.split(name) -> StoredSplit`.

Arrays are opened lazily and re-opened after a fork, so a `StoredSplit` can be handed to DataLoader
workers. Whole-shard reads (`read(start, stop)` over `shuffled_blocks(...)`) are the fast path (one GET
per shard and field, see shardread.py), and so are reads of a few samples within a shard (memory-mapped
locally, the whole shard fetched from an object store); every read checks the checksums of what it reads. A
shard marked done whose file is missing or fails a check raises one `KdcacheError` naming the shard and the
command that repairs it.
"""

from __future__ import annotations

import json
import os
from typing import Iterable

import numpy as np
import zarr

from kdcache.errors import KdcacheError
from kdcache.store import manifest as mf
from kdcache.store.backend import local_path, open_backend, remote, use_remote
from kdcache.store.layout import shard_count
from kdcache.store.schema import check_array, check_manifest, damaged, expected_fields
from kdcache.store.shardread import DamagedFile, MissingFile, done_flags, read_shard, read_with_zarr


class DamagedShardError(KdcacheError):
    """A shard marked done whose files are missing or fail their checksums; `where` names it, `split` is its
    `StoredSplit` (set where it is raised: a DataLoader worker re-raises only the message)."""

    where: str = ""
    split: "StoredSplit | None" = None


def open_root(url: str, read_only: bool = True) -> zarr.Group:
    store = open_backend(str(url), read_only=read_only)
    try:
        # kdcache writes Zarr v3 only: no probing for v2 metadata (.zgroup, .zattrs, .zmetadata), four requests
        # fewer per open on an object store
        return zarr.open_group(store=store, mode="r" if read_only else "r+", zarr_format=3)
    except json.JSONDecodeError:
        raise damaged(str(url), f"{url}/zarr.json", "is not valid JSON") from None
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        raise KdcacheError(f"'{url}' is not a zarr store: pass the --out of a `kdcache precompute` run") from err


def open_store(url: str) -> "CacheStore":
    """Open a complete-or-partial kdcache store read-only; `KdcacheError` if `url` is not one."""
    root = open_root(str(url))
    manifest = root.attrs.get(mf.ATTR)
    if not isinstance(manifest, dict):
        if mf.CREATING_ATTR in root.attrs:
            raise KdcacheError(f"'{url}' is still being created: wait for `kdcache precompute` (shard 0) or rerun it")
        raise KdcacheError(f"'{url}' is a zarr store but not a kdcache cache: pass the --out of `kdcache precompute`")
    if isinstance(manifest.get("format"), int) and manifest["format"] > mf.FORMAT:
        raise KdcacheError(f"'{url}' was written by a newer kdcache (format {manifest['format']}): upgrade kdcache")
    store = CacheStore(str(url), check_manifest(str(url), manifest))
    store.check_arrays()
    return store


class CacheStore:
    """A kdcache store: manifest plus one `StoredSplit` per precomputed split."""

    def __init__(self, url: str, manifest: dict):
        self.url = url
        self.manifest = manifest
        # one StoredSplit per split: the arrays `check_arrays` opened (a GET each on an object store) are the ones
        # later reads use, not opened again
        self._splits: dict[str, StoredSplit] = {}

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    @property
    def resolution(self) -> tuple[int, int]:
        return tuple(self.manifest["resolution"])  # type: ignore[return-value]

    @property
    def teacher(self) -> dict | None:
        return self.manifest.get("teacher")

    @property
    def teacher_space(self) -> str | None:
        return (self.teacher or {}).get("output_space")

    @property
    def feature_layers(self) -> list[str]:
        return list((self.manifest.get("features") or {}).get("layers", []))

    def identity(self, splits: Iterable[str]) -> str:
        """The identity of what a run reading `splits` gets from this store (`manifest.run_identity`)."""
        return mf.run_identity(self.manifest, list(splits))

    def check_arrays(self) -> None:
        """Open every array once: one whose metadata disagrees with the manifest is refused now, in one line."""
        for spec in self.splits:
            split = self.split(spec)
            for field in [*split.fields, "shard_done"]:
                split.array(field)

    def _add_split_hint(self, name: str) -> str:
        return f"add it with `kdcache precompute --split {name} --out {self.url}` and the cache's teacher and options"

    def split(self, name: str) -> "StoredSplit":
        found = mf.split_entry(self.manifest, name)
        if found is None:
            raise KdcacheError(
                f"split '{name}' is not in cache {self.url} (it has {', '.join(self.splits)}): "
                f"{self._add_split_hint(name)}"
            )
        spec, entry = found
        if spec not in self._splits:
            self._splits[spec] = StoredSplit(self.url, spec, entry, self.manifest)
        return self._splits[spec]

    def completeness(self) -> dict[str, tuple[int, int]]:
        """{spec: (shards done, shards total)}."""
        return {spec: self.split(spec).shards_done() for spec in self.splits}

    def require(
        self,
        splits: Iterable[str] = (),
        resolution: tuple[int, int] | None = None,
        teacher_space: str | None = None,
        features: Iterable[str] = (),
        teacher: str | None = None,
        complete: bool = True,
    ) -> "CacheStore":
        """Refuse a cache made for something else: raises one `KdcacheError` line naming every mismatch."""
        problems = []
        fix = "precompute a matching cache with `kdcache precompute` or change the training options"
        for name in splits:
            if mf.split_entry(self.manifest, name) is None:
                problems.append(f"split '{name}' is missing (cache has {', '.join(self.splits)}; "
                                f"{self._add_split_hint(name)})")
            elif complete:
                done, total = self.split(name).shards_done()
                if done < total:
                    problems.append(f"split '{name}' is incomplete ({done}/{total} shards): rerun the precompute command")
        if resolution is not None and tuple(resolution) != self.resolution:
            problems.append(f"resolution is {self.resolution[0]}x{self.resolution[1]}, asked {resolution[0]}x{resolution[1]}")
        if teacher is not None and (self.teacher or {}).get("name", "none") != teacher:
            problems.append(f"teacher is '{(self.teacher or {}).get('name', 'none')}', asked '{teacher}'")
        if teacher_space is not None and self.teacher_space != teacher_space:
            problems.append(f"teacher output space is {self.teacher_space}, asked {teacher_space}")
        missing = [layer for layer in features if layer not in self.feature_layers]
        if missing:
            problems.append(f"feature layers {missing} are not cached (cache has {self.feature_layers or 'none'})")
        if problems:
            raise KdcacheError(f"cache {self.url} does not match: " + "; ".join(problems) + f"; {fix}")
        return self

    def __repr__(self) -> str:
        return f"CacheStore({self.url!r}, splits={self.splits})"


class StoredSplit:
    """One split of a store; `read(start, stop, fields)` returns numpy arrays keyed by field name."""

    def __init__(self, url: str, spec: str, entry: dict, manifest: dict):
        self.url, self.spec, self.entry, self.manifest = url, spec, entry, manifest
        self.group = entry["group"]
        self._arrays: dict[str, zarr.Array] = {}
        self._root: zarr.Group | None = None  # opened once per process, like the arrays
        self._pid = None
        self._remote = remote(url)  # how this process reaches the store: a spawned loader worker does the same

    # --- description -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The split spec it was precomputed from (e.g. `nyu-train`, `folder:/data/x`)."""
        return self.spec

    def __len__(self) -> int:
        return int(self.entry["count"])

    @property
    def labeled(self) -> bool:
        return bool(self.entry["labeled"])

    @property
    def space(self) -> str | None:
        return self.entry.get("space")

    @property
    def shard_size(self) -> int:
        return int(self.manifest["shard_size"])

    @property
    def n_shards(self) -> int:
        return shard_count(len(self), self.shard_size)

    @property
    def feature_layers(self) -> list[str]:
        return list((self.manifest.get("features") or {}).get("layers", []))

    def feature_array(self, layer: str) -> str:
        return self.manifest["features"]["per_layer"][layer]["array"]

    @property
    def fields(self) -> list[str]:
        """Per-sample fields `read` can return; features as `features/<layer>`."""
        names = ["image", "ids", "readable"]
        if self.manifest.get("teacher"):
            names += ["teacher", "teacher_ok"] + [f"features/{layer}" for layer in self.feature_layers]
        if self.labeled:
            names += ["gt", "valid"]
        return names

    # --- access ------------------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_arrays"], state["_root"], state["_pid"] = {}, None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if local_path(self.url) is None:
            use_remote(self.url, self._remote.storage_options, self._remote.read_cache, self._remote.read_cache_bytes)

    def array(self, field: str) -> zarr.Array:
        """The zarr array of a field (opened once per process)."""
        if self._pid != os.getpid():
            self._arrays, self._root, self._pid = {}, None, os.getpid()
        if field not in self._arrays:
            path = field
            if field.startswith("features/"):
                path = f"features/{self.feature_array(field.split('/', 1)[1])}"
            self._arrays[field] = self._open_checked(path)
        return self._arrays[field]

    def _open_checked(self, path: str) -> zarr.Array:
        """The array at `path` of this split's group, once its metadata is what the manifest implies."""
        where = f"{self.group}/{path}"
        if self._root is None:
            self._root = open_root(self.url)
        try:
            array = self._root[where]
        except (KeyError, ValueError, TypeError) as err:  # missing, or a zarr.json that is not valid metadata
            raise damaged(self.url, f"{self.url}/{where}/zarr.json", f"cannot be read ({type(err).__name__})") from None
        if not isinstance(array, zarr.Array):
            raise damaged(self.url, f"{self.url}/{where}/zarr.json", "is a group, not an array")
        field = None if path == "shard_done" else expected_fields(self.manifest, self.labeled).get(path)
        if field is None and path != "shard_done":
            raise damaged(self.url, f"{self.url}/{where}", "is not an array the manifest names")
        check_array(self.url, where, array, field, len(self), self.shard_size)
        return array

    def read(self, start: int = 0, stop: int | None = None, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Samples [start, stop) as {field: array}; `fields` may say "features" for every cached layer."""
        stop = len(self) if stop is None else min(stop, len(self))
        out = {}
        for field in self._expand(fields):
            values = self._read_field(field, start, stop)
            out[field] = np.array([str(v) for v in values], dtype=str) if field == "ids" else values
        return out

    def _read_field(self, field: str, start: int, stop: int) -> np.ndarray:
        """One field's samples [start, stop), shard by shard (each file read once, its checksums checked)."""
        array, size = self.array(field), self.shard_size
        if stop <= start:
            return array[start:stop]
        parts = []
        for shard in range(start // size, (stop - 1) // size + 1):
            first, last = max(start, shard * size), min(stop, (shard + 1) * size)
            try:
                values = read_shard(array, shard, first - shard * size, last - shard * size)
                parts.append(read_with_zarr(array, first, last) if values is None else values)
            except MissingFile as err:
                if self.shard_done(shard):
                    raise self.damage_error(shard, field, str(err)) from None
                parts.append(array[first:last])  # not written yet: the fill value, as zarr reads it
            except DamagedFile as err:
                raise self.damage_error(shard, field, str(err)) from None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def damage_error(self, shard: int, field: str, reason: str) -> "DamagedShardError":
        """The one-line error for a damaged shard: which, how, and how to repair it (the store knows nothing of
        precompute's command line: training, which does, names the exact command, `train.loader.read_checked`)."""
        where = f"cache {self.url}: shard {shard} of split '{self.spec}' is damaged ({field}: {reason})"
        err = DamagedShardError(f"{where}: rerun the `kdcache precompute` command that made it, which redoes the "
                                f"damaged shards (`kdcache cache verify {self.url}` lists them and prints that command)")
        err.where, err.split = where, self
        return err

    def _expand(self, fields: Iterable[str] | None) -> list[str]:
        if fields is None:
            return self.fields
        expanded = []
        for field in fields:
            names = [f for f in self.fields if f.startswith("features/")] if field == "features" else [field]
            for name in names:
                if name not in self.fields:
                    raise KdcacheError(f"split '{self.spec}' of {self.url} has no field '{name}' (fields: {', '.join(self.fields)})")
                expanded.append(name)
        return expanded

    def done_flags(self) -> np.ndarray:
        """`shard_done` as bools (a damaged flag counts as not done)."""
        return done_flags(self.array("shard_done"))

    def shard_done(self, shard: int) -> bool:
        return bool(self.done_flags()[shard])

    def shards_done(self) -> tuple[int, int]:
        done = self.done_flags()
        return int(done.sum()), int(done.size)

    def shuffled_blocks(self, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[tuple[int, int]]:
        """Whole-shard (start, stop) blocks in a per-epoch random order, split across `world_size` ranks.

        Every rank gets the same number of blocks (like DistributedSampler, the permutation is padded by
        wrapping around), so data-parallel ranks run the same number of steps. Shuffle samples *within*
        a block after reading it; blocks keep reads contiguous and fast.
        """
        if not 0 <= rank < world_size:
            raise KdcacheError(f"rank {rank} is outside world size {world_size}: use 0 <= rank < world_size")
        order = np.random.default_rng([int(seed), int(epoch)]).permutation(self.n_shards)
        per_rank = -(-len(order) // world_size)
        padded = np.resize(order, per_rank * world_size)
        blocks = []
        for shard in padded[rank::world_size]:
            start = int(shard) * self.shard_size
            blocks.append((start, min(len(self), start + self.shard_size)))
        return blocks

    def __repr__(self) -> str:
        return f"StoredSplit({self.spec!r}, n={len(self)}, fields={self.fields})"

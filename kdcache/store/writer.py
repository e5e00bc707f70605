"""Writing a kdcache store: safe creation, and whole-shard writes from a background thread.

Creation protocol (safe when several `--shard i/N` processes start at once): only the process that owns
shard 0 creates the store; the root first gets `kdcache_creating`, then every array, then the manifest
(`attrs["kdcache"]`) last. Other processes wait until the manifest appears. A creator killed half-way
simply recreates on restart (no data is written before the manifest exists).

Write protocol (resumable after kill -9 at any moment): a shard's arrays are written whole, each file
atomically, then all of them durably (see backend.py); only then is `<split>/shard_done[shard]` set. Every
array of a done shard has its file, even when all its values are the fill value. A restart redoes every shard
whose flag is unset, replacing whatever a killed writer left there.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

from kdcache.atomic import make_durable, write_bytes
from kdcache.console import log
from kdcache.errors import KdcacheError
from kdcache.store import manifest as mf
from kdcache.store.schema import check_manifest
from kdcache.store.backend import local_path, open_backend
from kdcache.store.shardread import chunk_path, shard_length
from kdcache.store.shardwrite import ShardEncoder

CREATE_TIMEOUT_S = 3600.0


def _root(url: str) -> zarr.Group:
    return zarr.open_group(store=open_backend(url, read_only=False), mode="a")


def _store_is_empty(url: str) -> bool:
    path = local_path(url)
    if path is not None:
        if path.exists() and not path.is_dir():
            raise KdcacheError(f"--out '{url}' is an existing file, not a store folder: choose a new --out path")
        return not path.exists() or not any(path.iterdir())
    store = open_backend(url, read_only=True)
    return zarr.core.sync.sync(store.is_empty(""))


def existing_manifest(url: str) -> dict | None:
    """The manifest of an initialised store at `url`; None if nothing (or a half-created store) is there.

    Raises if `url` holds something that is not a kdcache store, so precompute never writes into it.
    """
    if _store_is_empty(url):
        return None
    try:
        root = zarr.open_group(store=open_backend(url, read_only=True), mode="r")
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        root = None
    if root is None or (mf.ATTR not in root.attrs and mf.CREATING_ATTR not in root.attrs):
        raise KdcacheError(f"--out '{url}' exists and is not a kdcache store: choose a new --out path")
    manifest = root.attrs.get(mf.ATTR)
    return None if manifest is None else check_manifest(url, manifest)


def create_store(url: str, manifest: dict, build: Callable[[zarr.Group], None]) -> None:
    """Create the store: marker, `build(root)` (arrays, PCA), then the manifest last."""
    # The marker is written with the root group itself, so no reader ever sees an unmarked root. The arrays'
    # metadata is written atomically and made durable together, before the manifest (durable itself) goes last.
    root = zarr.open_group(store=open_backend(url, read_only=False, durable=False), mode="w",
                           attributes={mf.CREATING_ATTR: manifest["kdcache_version"]})
    _build_then_manifest(url, root, manifest, build)


def add_to_store(url: str, manifest: dict, groups: list[str], build: Callable[[zarr.Group], None]) -> None:
    """Add the groups `groups` to an initialised store: `build(root)` creates them, then `manifest` (naming them)
    replaces the old one. Killed in between, the store keeps its old manifest, which does not name them; the
    next run recreates them."""
    root = zarr.open_group(store=open_backend(url, read_only=False, durable=False), mode="r+")
    _build_then_manifest(url, root, manifest, build, groups)


def _build_then_manifest(url: str, root: zarr.Group, manifest: dict, build: Callable[[zarr.Group], None],
                         folders: Iterable[str] = ("",)) -> None:
    build(root)
    path = local_path(url)
    if path is not None:  # only what `build` wrote: a store's existing chunks are durable already
        base = path.expanduser()
        make_durable(sorted(p for folder in folders for p in (base / folder).rglob("*") if p.is_file()))
    manifest["identity"] = mf.store_identity(manifest)  # kept consistent with every manifest written
    zarr.open_group(store=open_backend(url, read_only=False), mode="r+").attrs.put({mf.ATTR: manifest})


def wait_for_manifest(url: str, shard: tuple[int, int], timeout_s: float = CREATE_TIMEOUT_S) -> dict:
    """Block until the shard-0 process has created the store (for `--shard i/N` with i > 0)."""
    deadline, announced = time.monotonic() + timeout_s, False
    while True:
        try:
            manifest = existing_manifest(url)
        except KdcacheError:
            manifest = None  # caught shard 0 while it clears a half-created store; shard 0 reports real problems
        if manifest is not None:
            return manifest
        if not announced:
            log(f"shard {shard[0]}/{shard[1]}: waiting for the shard 0/{shard[1]} process to create {url}")
            announced = True
        if time.monotonic() > deadline:
            raise KdcacheError(
                f"{url} was not created within {timeout_s:.0f} s: start the `--shard 0/{shard[1]}` process too"
            )
        time.sleep(0.2)


def undo_shards(url: str, group: str, shards: list[int]) -> None:
    """Make `shards` of `group` as if never written: clear their done flags (durably), then delete their files, so
    the next write starts from nothing (a damaged file is never read back to be merged)."""
    root = zarr.open_group(store=open_backend(url, read_only=False), mode="r+")
    done = root[f"{group}/shard_done"]
    for shard in shards:
        done[shard] = False
    arrays = [array for _, array in root[group].members(max_depth=None)
              if isinstance(array, zarr.Array) and array.basename != "shard_done"]
    for array in arrays:
        per_file = shard_length(array)
        for shard in shards:
            zarr.core.sync.sync(array.store_path.store.delete(chunk_path(array, shard * per_file)))


def default_writer_threads() -> int:
    """Encoder threads: half the cores (at least 2, at most 8); Blosc releases the GIL while it compresses."""
    return max(2, min(8, (os.cpu_count() or 2) // 2))


def _discard_outer_chunk(array: zarr.Array, start: int) -> None:
    """Delete the file holding sample `start` before zarr rewrites it (the fallback path only).

    zarr reads an existing shard before rewriting it, even when the write covers it whole, so whatever a
    killed or failed writer left there (possibly unreadable) must go first. Files of other shards are
    never touched, so concurrent writers stay independent.
    """
    zarr.core.sync.sync(array.store_path.store.delete(chunk_path(array, start)))


class ShardWriter:
    """Writes whole shards with a pool of threads, several shards in flight, so the teacher never waits on
    compression or I/O.

    Each shard's arrays are encoded in parallel (`ShardEncoder`: one file per array, one put each); once all of a
    shard's files are written they are made durable together (one fsync per file, one per folder), and only
    then is its `shard_done` flag set (durably). `submit` blocks while `max_pending` shards are in flight
    (bounded memory); an error in a thread is re-raised by the next `submit` or by `close`.
    """

    def __init__(self, url: str, max_pending: int | None = None, threads: int | None = None,
                 guard: Callable[[], None] | None = None):
        self.url = url
        self._guard = guard  # raises when this run may no longer write (an object store's lease was lost)
        self.threads = threads or default_writer_threads()
        self._slots = threading.BoundedSemaphore(max_pending or max(2, self.threads))
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kdcache-shard-writer")
        self._data = zarr.open_group(store=open_backend(url, read_only=False, durable=False), mode="r+")
        self._done = zarr.open_group(store=open_backend(url, read_only=False), mode="r+")
        self._local = local_path(url)
        self._arrays: dict[str, tuple[zarr.Array, ShardEncoder | None]] = {}
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self.written_shards = 0

    def submit(self, group: str, shard: int, start: int, data: dict) -> None:
        """Queue shard `shard` of `group` (first sample `start`); `data`: array name -> the shard's samples, as one
        array or a list of consecutive arrays (batches)."""
        self._raise_if_failed()
        self._slots.acquire()
        if self._error is not None:
            self._slots.release()
            self._raise_if_failed()
        job = _ShardJob(self, group, shard, start, len(data))
        for name, values in data.items():
            self._pool.submit(job.write, name, values)

    def close(self) -> None:
        """Wait until every submitted shard is durable; re-raise a writer error."""
        self._pool.shutdown(wait=True)
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _array(self, key: str) -> tuple[zarr.Array, ShardEncoder | None]:
        with self._lock:
            if key not in self._arrays:
                # every file of a done shard is written, even one all fill (ids of unreadable samples, flags all
                # False), so a missing file is always damage (kdcache.store.integrity)
                array = self._data[key].with_config({"write_empty_chunks": True})
                self._arrays[key] = (array, ShardEncoder.of(array))
            return self._arrays[key]

    def _write_array(self, key: str, start: int, values) -> str:
        """Write one array's part of a shard (an array, or a list of consecutive arrays); returns the store key
        of the file written."""
        array, encoder = self._array(key)
        if encoder is None:  # unsharded per-sample scalars (one chunk per shard), or an unknown layout
            values = np.concatenate(values) if isinstance(values, (list, tuple)) else values
            if array.shards:
                _discard_outer_chunk(array, start)
            array[start:start + len(values)] = values
            return chunk_path(array, start)
        path, payload = encoder.encode(start, values)
        if self._local is not None:
            write_bytes(self._local.expanduser() / path, payload)
        else:
            store = array.store_path.store
            zarr.core.sync.sync(store.set(path, default_buffer_prototype().buffer.from_bytes(payload)))
        return path

    def _finish(self, group: str, shard: int, paths: list[str]) -> None:
        if self._local is not None:
            make_durable([self._local.expanduser() / path for path in paths])
        if self._guard is not None:
            self._guard()
        self._done[f"{group}/shard_done"][shard] = True
        with self._lock:
            self.written_shards += 1

    def _fail(self, err: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = err


class _ShardJob:
    """One shard in flight: its arrays are written by pool threads; the last one to finish completes it."""

    def __init__(self, writer: ShardWriter, group: str, shard: int, start: int, arrays: int):
        self.writer, self.group, self.shard, self.start = writer, group, shard, start
        self.remaining, self.paths, self.failed = arrays, [], False
        self._lock = threading.Lock()

    def write(self, name: str, values: np.ndarray) -> None:
        try:
            if self.writer._error is None:
                path = self.writer._write_array(f"{self.group}/{name}", self.start, values)
                with self._lock:
                    self.paths.append(path)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self.failed = True
            self.writer._fail(err)
        with self._lock:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self._complete()

    def _complete(self) -> None:
        try:
            if not self.failed and self.writer._error is None:
                self.writer._finish(self.group, self.shard, self.paths)
        except BaseException as err:  # noqa: BLE001
            self.writer._fail(err)
        finally:
            self.writer._slots.release()

"""Writing a kdcache store: safe creation, and whole-shard writes from a background thread.

Creation protocol (safe when several `--shard i/N` processes start at once): only the process that owns
shard 0 creates the store; the root first gets `kdcache_creating`, then every array, then the manifest
(`attrs["kdcache"]`) last. Other processes wait until the manifest appears. A creator killed half-way
simply recreates on restart (no data is written before the manifest exists).

Write protocol (resumable after kill -9 at any moment): a shard's arrays are written whole, each file
atomically and durably (see backend.py); only then is `<split>/shard_done[shard]` set. A restart redoes
every shard whose flag is unset, overwriting whatever a killed writer left there.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

import numpy as np
import zarr

from kdcache.console import log
from kdcache.errors import KdcacheError
from kdcache.store import manifest as mf
from kdcache.store.backend import local_path, open_backend

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
    return manifest if isinstance(manifest, dict) else None


def create_store(url: str, manifest: dict, build: Callable[[zarr.Group], None]) -> None:
    """Create the store: marker, `build(root)` (arrays, PCA), then the manifest last."""
    # The marker is written with the root group itself, so no reader ever sees an unmarked root.
    root = zarr.open_group(store=open_backend(url, read_only=False), mode="w",
                           attributes={mf.CREATING_ATTR: manifest["kdcache_version"]})
    build(root)
    root.attrs.put({mf.ATTR: manifest})


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


def _discard_outer_chunk(array: zarr.Array, start: int) -> None:
    """Delete the file holding sample `start` (a shard, or the shard-sized chunk of a 1-D array).

    zarr reads an existing shard before rewriting it, even when the write covers it whole, so whatever a
    killed or failed writer left there (possibly unreadable) must go first. Files of other shards are
    never touched, so concurrent writers stay independent.
    """
    outer = array.shards[0] if array.shards else array.chunks[0]
    coords = (start // outer,) + (0,) * (array.ndim - 1)
    key = array.metadata.encode_chunk_key(coords)
    path = f"{array.store_path.path}/{key}" if array.store_path.path else key
    zarr.core.sync.sync(array.store_path.store.delete(path))


class ShardWriter:
    """Writes whole shards on a background thread so the teacher never waits on compression or I/O.

    `submit` blocks when `max_pending` shards are queued (bounded memory); an error in the thread is
    re-raised by the next `submit` or by `close`.
    """

    def __init__(self, url: str, max_pending: int = 2):
        self.url = url
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.written_shards = 0
        self._thread = threading.Thread(target=self._run, name="kdcache-shard-writer", daemon=True)
        self._thread.start()

    def submit(self, group: str, shard: int, start: int, data: dict[str, np.ndarray]) -> None:
        self._raise_if_failed()
        self._queue.put((group, shard, start, data))

    def close(self) -> None:
        """Wait until every queued shard is durable; re-raise a writer error."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        root = None
        arrays: dict[str, zarr.Array] = {}
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is not None:
                continue  # drain so `submit` never blocks forever after a failure
            try:
                root = root or _root(self.url)
                self._write(root, arrays, *job)
            except BaseException as err:  # noqa: BLE001 - handed to the main thread
                self._error = err

    def _write(self, root: zarr.Group, arrays: dict, group: str, shard: int, start: int, data: dict) -> None:
        def array(name: str) -> zarr.Array:
            key = f"{group}/{name}"
            if key not in arrays:
                arrays[key] = root[key]
            return arrays[key]

        for name, values in data.items():
            _discard_outer_chunk(array(name), start)
            array(name)[start:start + len(values)] = values
        array("shard_done")[shard] = True
        self.written_shards += 1

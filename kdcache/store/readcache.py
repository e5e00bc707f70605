"""A bounded local copy of a remote store's chunks, so that epochs after the first read from the local disk.

`kdcache train --cache s3://...` reads whole shards, one GET each (`shardread.py`); every later epoch asks for the
same objects again. `CachedReadStore` wraps the remote zarr store: a whole-object read of a chunk or shard is
served from `<folder>/<store>/<key>@<etag>-<size>` when that file is there, else fetched once and written there
(atomically: a killed reader never leaves a torn copy). The name holds the object's ETag and size, read from one
LIST per array (not one HEAD per object), so an object replaced in the bucket (a store rebuilt, a shard rewritten)
is a new name and is fetched again: a copy is never served for an object that changed. `<store>` is a hash of the
protocol, the endpoint and the store's path, so two buckets or two endpoints never share copies.

Only chunk keys are cached (`.../c/...`), never metadata, the manifest or `shard_done`, which precompute changes.
The folder is bounded: past `max_bytes`, the least recently used copies go first (down to 90 % of the bound).
DataLoader workers each keep their own count of the folder's bytes, so the bound holds to within a shard or two
per worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path

from zarr.abc.store import ByteRequest
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.storage import FsspecStore, WrapperStore

from kdcache.atomic import TEMP_MARK, write_bytes


def default_folder() -> str:
    """$KDCACHE_READ_CACHE, else the user cache folder ($XDG_CACHE_HOME or ~/.cache) /kdcache/reads."""
    if os.environ.get("KDCACHE_READ_CACHE"):
        return os.environ["KDCACHE_READ_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kdcache", "reads")


def cacheable(key: str) -> bool:
    """Chunk and shard objects of the data arrays; not metadata, not the resume record."""
    return ("/c/" in f"/{key}") and "shard_done/" not in key


class CachedReadStore(WrapperStore[FsspecStore]):
    """A read-only remote store whose whole-object chunk reads go through a bounded local folder."""

    def __init__(self, store: FsspecStore, url: str, folder: str, max_bytes: int):
        super().__init__(store)
        self.url, self.max_bytes = url, int(max_bytes)
        self.folder = Path(folder).expanduser()
        self.root = self.folder / _identity(store, url)
        self._listings: dict[str, dict[str, tuple[str, int]]] = {}
        self._lock = threading.Lock()

    def _with_store(self, store: FsspecStore) -> "CachedReadStore":
        return type(self)(store, self.url, str(self.folder), self.max_bytes)

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        if byte_range is None and cacheable(key):  # ranged reads (zarr's per-sample path) go to the store
            path = await self.local_copy(key)
            if path is not None:
                return prototype.buffer.from_bytes(path.read_bytes())
        return await self._store.get(key, prototype, byte_range)

    async def local_copy(self, key: str) -> Path | None:
        """The local file holding object `key` (fetched now if need be); None when the object is not listed (it
        does not exist, or was written after this process listed its array)."""
        prefix = _array_folder(key)
        if prefix not in self._listings:
            listing = await self._list(prefix)
            with self._lock:
                self._listings[prefix] = listing
        version, kept = self._kept(key)
        if version is None or kept is not None:
            return kept
        buffer = await self._store.get(key, default_buffer_prototype())
        if buffer is None:
            return None
        data = buffer.to_bytes()
        path = self._path(key, version)
        for stale in path.parent.glob(f"{Path(key).name}@*"):  # an older version of the same object
            stale.unlink(missing_ok=True)
        write_bytes(path, data)
        _Budget.of(self.folder).added(len(data), self.max_bytes)
        return path

    def local_copy_sync(self, key: str) -> Path | None:
        """`local_copy` from a synchronous caller; a copy already kept is found without zarr's event loop."""
        if _array_folder(key) in self._listings:
            version, kept = self._kept(key)
            if version is None or kept is not None:
                return kept
        import zarr

        return zarr.core.sync.sync(self.local_copy(key))

    def _kept(self, key: str) -> tuple[tuple[str, int] | None, Path | None]:
        """(ETag and size of `key` from its array's listing, or None when not listed; the local copy if kept)."""
        version = self._listings[_array_folder(key)].get(key)
        path = None if version is None else self._path(key, version)
        try:
            os.utime(path)  # least recently used goes first
        except (TypeError, FileNotFoundError):  # not listed, not kept, or just evicted by another worker
            return version, None
        return version, path

    def _path(self, key: str, version: tuple[str, int]) -> Path:
        return self.root / f"{key}@{version[0]}-{version[1]}"

    async def _list(self, prefix: str) -> dict[str, tuple[str, int]]:
        fs, base = self._store.fs, self._store.path.rstrip("/")
        found = await fs._find(f"{base}/{prefix}c", detail=True)
        listing = {}
        for name, info in found.items():
            key = name[len(base) + 1:] if name.startswith(f"{base}/") else name
            etag = re.sub(r"[^A-Za-z0-9-]", "", str(info.get("ETag") or info.get("etag") or info.get("mtime") or ""))
            listing[key] = (etag or "x", int(info.get("size") or 0))
        return listing


class _Budget:
    """Bytes in one read-cache folder, counted once per process, and the eviction that keeps it bounded."""

    _all: dict[Path, "_Budget"] = {}
    _guard = threading.Lock()

    def __init__(self, folder: Path):
        self.folder = folder
        self.bytes = sum(size for _, size, _ in _files(folder))
        self.lock = threading.Lock()

    @classmethod
    def of(cls, folder: Path) -> "_Budget":
        with cls._guard:
            if folder not in cls._all:
                cls._all[folder] = cls(folder)
            return cls._all[folder]

    def added(self, nbytes: int, max_bytes: int) -> None:
        with self.lock:
            self.bytes += nbytes
            if self.bytes <= max_bytes:
                return
            files = sorted(_files(self.folder), key=lambda entry: entry[2])  # oldest use first
            self.bytes = sum(size for _, size, _ in files)
            for path, size, _ in files:
                if self.bytes <= 0.9 * max_bytes:
                    break
                path.unlink(missing_ok=True)
                self.bytes -= size


def _array_folder(key: str) -> str:
    """The folder of the array a chunk key belongs to, "/" included ("" for a root array)."""
    return key[:f"/{key}".index("/c/")]


def _files(folder: Path) -> list[tuple[Path, int, float]]:
    """(path, size, last use) of every copy in `folder`; one that another worker evicts meanwhile is left out."""
    found = []
    for path in folder.rglob("*@*") if folder.is_dir() else ():
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if not path.name.endswith(TEMP_MARK):
            found.append((path, stat.st_size, stat.st_mtime))
    return found


def _identity(store: FsspecStore, url: str) -> str:
    """Protocol, endpoint and path of the store, hashed: a folder name that two stores never share."""
    fs = store.fs
    endpoint = (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url") or getattr(fs, "endpoint_url", None)
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or ""
    text = json.dumps([url.split("://", 1)[0], str(endpoint), store.path.rstrip("/")])
    return hashlib.sha256(text.encode()).hexdigest()[:16]

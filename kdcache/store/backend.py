"""URL -> zarr store, with writes that are atomic *and* durable on local disks.

zarr's `LocalStore` already writes each key to a temporary file and renames it into place, so a killed
process never leaves a torn chunk or shard. It does not fsync, though: after a power loss the rename
may be durable while the data is not. kdcache records a shard as done only after its data is written,
so `DurableLocalStore` fsyncs the file before the rename and the directory after it.

The shard writer batches that: it writes a shard's files with `kdcache.atomic.write_bytes` (temporary file and rename,
no fsync), then makes them all durable at once with `kdcache.atomic.make_durable` (each file, then each folder once),
and only then sets the shard's done flag. A crash in between leaves renamed files whose data may be lost, but
the flag unset: the shard is redone on resume, and its files are replaced whole.

Object stores (s3://, gs://, ...) replace whole objects atomically on PUT, so `FsspecStore` is used as is. Their
client is configured the standard way (for s3fs: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, ~/.aws), plus fsspec options given with `--storage-option KEY=VALUE` (`use_remote`), which
hold for every URL of that protocol in the process. A training run also reads remote chunks through a local read
cache (`kdcache.store.readcache`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from zarr.abc.store import Store
from zarr.core.buffer import Buffer
from zarr.storage import FsspecStore, LocalStore

from kdcache.atomic import TEMP_MARK, write_bytes
from kdcache.errors import KdcacheError


class DurableLocalStore(LocalStore):
    """`LocalStore` whose writes are fsynced before they are renamed into place (`sync`), or atomic only, for a
    writer that makes a batch of files durable at once (`make_durable`)."""

    sync = True

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        import asyncio

        if not self._is_open:
            await self._open()
        self._check_writable()
        await asyncio.to_thread(write_bytes, self.root / key, value.as_buffer_like(), exclusive=exclusive,
                                sync=self.sync)

    def set_sync(self, key: str, value: Buffer) -> None:
        self._ensure_open_sync()
        self._check_writable()
        write_bytes(self.root / key, value.as_buffer_like(), sync=self.sync)


class AtomicLocalStore(DurableLocalStore):
    """Atomic writes whose fsync is left to the caller (`make_durable`)."""

    sync = False


def local_path(url: str) -> Path | None:
    """The filesystem path of a plain path or `file://` URL; None for remote URLs."""
    parsed = urlparse(str(url))
    if parsed.scheme == "file":
        return Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" on Windows is a drive, not a scheme
        return None
    return Path(url)


@dataclass
class Remote:
    """How this process reaches the object stores of one protocol: fsspec options (`--storage-option`), and the
    read cache's folder and bound in bytes (no folder: reads go to the store every time)."""

    storage_options: dict = field(default_factory=dict)
    read_cache: str | None = None
    read_cache_bytes: int = 0


_REMOTES: dict[str, Remote] = {}  # protocol -> its settings in this process


def protocol(url: str) -> str:
    return urlparse(str(url)).scheme


def use_remote(url: str, storage_options: dict | None = None, read_cache: str | None = None,
               read_cache_bytes: int = 0) -> None:
    """Reach the object store of `url` (every URL of its protocol) with `storage_options` (None: those given
    before, if any), reading through the local read cache `read_cache` when given; a local `url` needs nothing."""
    if local_path(url) is None:
        options = remote(url).storage_options if storage_options is None else dict(storage_options)
        _REMOTES[protocol(url)] = Remote(options, read_cache, int(read_cache_bytes))
        check_reachable(url)


def check_reachable(url: str) -> None:
    """Fail in one line, before any work, when the client cannot reach the store's endpoint or finds no
    credentials (botocore's own errors, not OSErrors); the store's answers (no bucket, access denied) are OSErrors
    and are reported where they occur."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return  # not S3
    try:
        fs, path = remote_fs(url)
        fs.exists(path)
    except BotoCoreError as err:
        raise KdcacheError(f"cannot reach {url}: {err}: set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or --storage-option endpoint_url=...) for the store") from None
    except (ImportError, ValueError, OSError):
        return  # reported by open_backend, or by the command's own error handling


def check_lasting(url: str, option: str = "--out") -> None:
    """Refuse an output URL whose data dies with the process (fsspec's `memory://`): a command that wrote there
    would run the teacher for nothing. The library still takes one (tests, notebooks keep the process alive)."""
    if protocol(url) == "memory":
        raise KdcacheError(f"{option} '{url}' lives in this process's memory and vanishes when kdcache exits: "
                           "write the store to a path or an object store (s3://bucket/c.zarr)")


def remote(url: str) -> Remote:
    """This process's settings for the object store of `url`."""
    return _REMOTES.get(protocol(url), Remote())


def remote_fs(url: str):
    """(fsspec filesystem, path) of a remote `url`, synchronous, with its storage options."""
    from fsspec.core import url_to_fs

    return url_to_fs(str(url), **remote(url).storage_options)


def open_backend(url: str, read_only: bool, durable: bool = True) -> Store:
    """A zarr store for `url`: local paths and file:// get `DurableLocalStore` (`AtomicLocalStore` when not
    `durable`: the caller makes its writes durable), anything else fsspec (read through the read cache when
    this process uses one, see `use_remote`)."""
    path = local_path(url)
    if path is not None:
        if read_only and not path.exists():
            raise KdcacheError(f"no cache store at '{url}': check the path or run `kdcache precompute --out {url}`")
        return (DurableLocalStore if durable else AtomicLocalStore)(path.expanduser(), read_only=read_only)
    settings = remote(url)
    try:
        store = FsspecStore.from_url(str(url), storage_options=settings.storage_options, read_only=read_only)
    except (ImportError, ValueError) as err:
        raise KdcacheError(f"cannot open store URL '{url}' ({err}): install the fsspec backend for it, e.g. "
                           'pip install "kdcache[s3]"') from err
    if read_only and settings.read_cache:
        from kdcache.store.readcache import CachedReadStore

        return CachedReadStore(store, str(url), settings.read_cache, settings.read_cache_bytes)
    return store


def remove_stale_partials(url: str) -> int:
    """Delete temporary files left by a killed writer (local stores only); returns how many.

    Only safe when no other process writes the store at the same time (i.e. not with `--shard i/N`).
    """
    path = local_path(url)
    if path is None or not path.exists():
        return 0
    stale = list(path.rglob(f"*{TEMP_MARK}"))
    for file in stale:
        file.unlink(missing_ok=True)
    return len(stale)

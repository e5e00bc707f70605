"""Writes that land whole or not at all: every file and folder kdcache writes goes through here.

Each output is written under a temporary hidden sibling name and renamed into place (`os.replace`, atomic on
one filesystem), so a killed command (kill -9, full disk, power cut between the two) leaves the old output or
the new one, never half of either; the temporary is removed when the write fails. Temporary names carry
`TEMP_MARK` (`.NAME.<random>.partial[.ext]`): unique per call, so threads writing the same file never collide,
and recognisable, so `kdcache.store.backend.remove_stale_partials` can sweep those a killed writer left.

- `write_bytes` / `write_text`: a payload held in memory (optionally fsynced, or refused if the file exists).
- `replacing(path)`: a temporary path for writers that want a file name (PIL, matplotlib, video encoders);
  it keeps `path`'s extension, which those writers read the format from.
- `replacing_dir(directory)`: a temporary folder, swapped in whole (`swap_dir`), for checkpoints.
- `make_durable(paths)`: fsync a batch of files and their folders at once (the shard writer's commit).

Errors are left to the caller's `kdcache.errors.writing_to`, which names the output and how to continue.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

TEMP_MARK = ".partial"


def temp_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A unique hidden name beside `path` (same folder, so the final rename never crosses filesystems)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_MARK}{suffix}")


def write_bytes(path: str | os.PathLike, data, *, sync: bool = False, exclusive: bool = False) -> int:
    """Write the bytes-like `data` to `path` atomically; returns the bytes written.

    `sync`: fsync the file before the rename and its folder after it (durable across a power cut).
    `exclusive`: raise FileExistsError instead of replacing an existing file (zarr's `set_if_not_exists`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with tmp.open("wb") as handle:
            written = handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        if exclusive:
            os.link(tmp, path)  # raises FileExistsError instead of overwriting
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync:
        fsync_dir(path.parent)
    return written


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically, creating its folder; returns the path."""
    path = Path(path).expanduser()
    write_bytes(path, text.encode("utf-8"))
    return path


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path with `path`'s extension; renamed to `path` when the block succeeds, deleted when
    it raises.

        with replacing(png) as tmp:
            figure.savefig(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def replacing_dir(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `directory`; swapped in as `directory` (`swap_dir`) when the
    block succeeds, deleted when it raises."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_sibling(directory)
    staging.mkdir()
    try:
        yield staging
        swap_dir(staging, directory)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def swap_dir(staging: Path, directory: Path) -> None:
    """Rename the complete folder `staging` to `directory`. An existing `directory` is first renamed to
    `<name>.old` and deleted after: a kill between the two renames leaves it there, whole (a training resume
    looks for `last.old`)."""
    old = directory.with_name(directory.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if directory.exists():
        os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


def make_durable(paths: Iterable[str | os.PathLike]) -> None:
    """fsync every file in `paths`, then every folder holding one (once each). A path with no file (zarr deletes a
    chunk equal to the fill value instead of writing it) only has its folder synced, which makes the deletion
    durable.

    The fsyncs run side by side: the filesystem commits them together (measured: 68 files in 8 ms instead of
    249 ms one after another on this project's VM disk)."""
    paths = list(paths)
    _DURABLE_POOL.map_all(_fsync_file, paths)
    _DURABLE_POOL.map_all(fsync_dir, list({Path(path).parent for path in paths}))


def _fsync_file(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _FsyncPool:
    """A small shared thread pool for fsyncs (they release the GIL and mostly wait on the disk)."""

    def __init__(self, threads: int = 16):
        self.threads = threads
        self._pool = None
        self._lock = threading.Lock()

    def map_all(self, function, items: list) -> None:
        if len(items) <= 1:
            for item in items:
                function(item)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kdcache-fsync")
        for _ in self._pool.map(function, items):  # re-raises the first error
            pass


_DURABLE_POOL = _FsyncPool()


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (a rename, a deletion) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

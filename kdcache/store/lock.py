"""Who may write a store or a run folder: two `kdcache precompute` runs on one store, or two `kdcache train` runs
on one `--out`, must never mix.

Locks are `fcntl.flock`s on files in a hidden folder beside the store (`cache/.x.zarr.locks/` for
`cache/x.zarr`), so the store itself stays a plain Zarr hierarchy. The kernel drops a flock when its process
dies, kill -9 included: a lock file left by a killed run is not held, and the next run takes it over (and says
so). Each lock file records its holder (pid, host, start time, command), which a refused run names.

- `writers`: exclusive for a run that writes every shard; shared for `--shard i/N` runs, which also hold
  `shard-i-of-N` exclusively. So a second whole run, a whole run beside sharded ones, or two runs of the same
  slice are refused at once, while disjoint slices run side by side.
- `create`: exclusive while a run checks whether the store exists and creates it.
- `train`: exclusive for a `kdcache train` run on its `--out` (`training`; `runs/.x.locks/` for `runs/x`), so a
  second run there is refused instead of mixing its checkpoints and metrics with the first's.

On S3 (s3://), the same locks are leases on objects beside the store (`kdcache.store.lease`). Other object stores
(gs://, ...) have no locks: split the work there with `--shard i/N`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from kdcache.console import log
from kdcache.errors import KdcacheError
from kdcache.store import lease
from kdcache.store.backend import local_path

try:
    import fcntl
except ImportError:  # Windows: no flock; stores are not locked there
    fcntl = None


def lock_folder(url: str) -> Path | None:
    """The lock folder of a local store, or None (remote store, or no flock on this platform)."""
    path = local_path(url)
    if path is None or fcntl is None:
        return None
    path = path.expanduser().absolute()
    return path.parent / f".{path.name}.locks"


@dataclass(frozen=True)
class Role:
    """What a lock's holder is doing, for the refusal and the take-over lines."""

    doing: str  # "kdcache precompute ... is writing URL"
    fix: str  # what a refused run can do
    taken_over: str  # what happens to a killed holder's work


PRECOMPUTE = Role("kdcache precompute", "wait for it to finish (rerunning then resumes), or use --shard i/N to "
                  "split the work between runs", "its unfinished shards are redone")
TRAIN = Role("kdcache train", "wait for it to finish, or train into another --out",
             "its run folder is continued by --resume or replaced by --overwrite")


@contextlib.contextmanager
def training(out):
    """Hold the lock of a `kdcache train` run folder for the whole run (refused while another run holds it)."""
    folder = lock_folder(str(out))
    if folder is None:
        yield
        return
    with _flock(folder / "train", exclusive=True, url=str(out), role=TRAIN):
        yield


@contextlib.contextmanager
def writing(url: str, shard: tuple[int, int]):
    """Hold the locks of a run that writes shards `s % N == i` of `url` (all shards when N == 1). Yields the object
    store's lease (its `check()` says whether it is still held), or None for a local store."""
    folder = lock_folder(url)
    if folder is None:
        with lease.writing(url, shard, refuse=lambda holder: _refusal(url, holder, PRECOMPUTE)) as held:
            yield held
        return
    with contextlib.ExitStack() as held:
        whole = shard[1] == 1
        held.enter_context(_flock(folder / "writers", exclusive=whole, url=url))
        if not whole:
            held.enter_context(_flock(folder / f"shard-{shard[0]}-of-{shard[1]}", exclusive=True, url=url))
        yield


def refuse_if_written(url: str, shard: tuple[int, int]) -> None:
    """Refuse at once, as `writing` would, when another run writes `url` (taking and dropping the locks): for
    work a run does before it takes them, such as reading the whole store for damage."""
    folder = lock_folder(url)
    if folder is not None and folder.exists():
        with writing(url, shard):
            pass


@contextlib.contextmanager
def creating(url: str):
    """Hold the creation lock of `url`, waiting for another run that is creating it."""
    folder = lock_folder(url)
    if folder is None:
        with lease.creating(url, refuse=lambda holder: _refusal(url, holder, PRECOMPUTE)):
            yield
        return
    with _flock(folder / "create", exclusive=True, url=url, wait=True):
        yield


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool, url: str, wait: bool = False, role: Role = PRECOMPUTE):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as err:
        raise KdcacheError(f"cannot create the lock {path}: {err.strerror}: choose an --out in a writable folder") from err
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(handle, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KdcacheError(_refusal(url, _holder(handle), role)) from None
        _take_over(handle, path, exclusive, role)
        try:
            yield
        finally:
            if exclusive:  # an exit, with or without an error, leaves no holder behind: one left behind was killed
                handle.seek(0)
                handle.truncate()
                handle.flush()
    finally:
        handle.close()  # closing drops the flock


def _holder(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}


def _take_over(handle, path: Path, exclusive: bool, role: Role) -> None:
    """Record this process as the holder; say so when a killed run's lock is taken over."""
    previous = _holder(handle)
    if exclusive and previous.get("pid") and not _alive(previous):
        log(f"taking over the lock of pid {previous['pid']} ({previous.get('started', '?')}), which is no longer "
            f"running: {role.taken_over}")
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join(sys.argv)}
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(me))
    handle.flush()
    path.touch()


def _alive(holder: dict) -> bool:
    # on another host: cannot tell from here
    return holder.get("host") != socket.gethostname() or lease.process_running(holder.get("pid"))


def _refusal(url: str, holder: dict, role: Role) -> str:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
    command = holder.get("command")
    return f"another {role.doing} ({who}{f': {command}' if command else ''}) is writing {url}: {role.fix}"

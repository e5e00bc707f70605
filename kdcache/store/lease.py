"""Leases: the store locks of `lock.py` on an object store (s3://), where there are no flocks.

A lock is an object beside the store (`s3://bucket/x/.c.zarr.locks/writers` for `s3://bucket/x/c.zarr`), the
same names as on disk (`writers`, `shard-i-of-N`, `create`). It is taken with S3's conditional create (PutObject
with `If-None-Match: *`: of two runs racing for it, exactly one gets it) and holds its holder (pid, host, boot id,
start time, command) and an expiry. The holder renews it every `lease_s / 4` from a thread, replacing it only if
it is still the object it wrote (`If-Match: <etag>`); a run killed with -9 stops renewing, and its successor takes
the lock over, also with `If-Match`, once the expiry has passed, or at once when the dead holder ran on this
machine (same boot id, its pid is gone), as the disk locks do. Expiries are read with the local clock: machines
sharing a bucket keep their clocks within a few seconds of each other (NTP), far less than a lease.

A holder that could not renew in time (paused, or cut off from the bucket longer than the lease) may have been
replaced: it notices when a renewal fails, and `check()` then stops its run before it marks another shard done.

What is held together: a whole run holds `writers`, then makes sure no `shard-*` lease is live; a `--shard i/N`
run holds `shard-i-of-N`, then makes sure `writers` is not live. Two such runs starting in the same instant may
both be refused (each sees the other), but never both admitted.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid

from kdcache.console import log
from kdcache.errors import KdcacheError
from kdcache.store.backend import protocol, remote_fs

LEASE_S = 60.0  # a killed run on another machine blocks its successor this long
WAIT_S = 0.5  # between tries of a lease that is waited for (`create`)


def supported(url: str) -> bool:
    """Leases need conditional writes, which kdcache drives through s3fs."""
    return protocol(url) in ("s3", "s3a")


def boot_id() -> str:
    """This machine's boot (Linux); two processes with one boot id run on one machine, whatever its host name."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return socket.gethostname()


class LockFolder:
    """The lease objects of one store on S3: create / read / replace / delete, conditionally."""

    def __init__(self, url: str):
        self.fs, path = remote_fs(url)
        bucket, key, _ = self.fs.split_path(path)
        key = key.rstrip("/")
        if not key:
            raise KdcacheError(f"--out '{url}' is a whole bucket: write the store below it, e.g. s3://{bucket}/c.zarr")
        parent, _, name = key.rpartition("/")
        self.bucket, self.prefix = bucket, f"{parent}/.{name}.locks/" if parent else f".{name}.locks/"

    def create(self, name: str, holder: dict) -> str | None:
        """ETag of the new lease object, or None if one is there already."""
        return self._put(name, holder, IfNoneMatch="*")

    def replace(self, name: str, holder: dict, etag: str) -> str | None:
        """ETag after replacing the lease object if it is still `etag`; None if it is not (or is gone)."""
        return self._put(name, holder, IfMatch=etag)

    def read(self, name: str) -> tuple[dict, str] | None:
        try:
            found = self.fs.call_s3("get_object", Bucket=self.bucket, Key=self.prefix + name)
        except FileNotFoundError:
            return None
        body = found["Body"]
        data = _read_body(self.fs, body)
        try:
            holder = json.loads(data or b"{}")
        except json.JSONDecodeError:
            holder = {}
        return holder, found["ETag"]

    def names(self, start: str) -> list[str]:
        listed = self.fs.call_s3("list_objects_v2", Bucket=self.bucket, Prefix=self.prefix + start)
        return [entry["Key"][len(self.prefix):] for entry in listed.get("Contents", [])]

    def delete(self, name: str) -> None:
        self.fs.call_s3("delete_object", Bucket=self.bucket, Key=self.prefix + name)

    def _put(self, name: str, holder: dict, **condition) -> str | None:
        try:
            put = self.fs.call_s3("put_object", Bucket=self.bucket, Key=self.prefix + name,
                                  Body=json.dumps(holder).encode(), **condition)
        except (FileNotFoundError, FileExistsError):
            return None  # s3fs's names for 404 and for 412 on If-None-Match
        except OSError as err:
            if _condition_failed(err):
                return None
            raise
        return put["ETag"]


def _condition_failed(err: OSError) -> bool:
    """412 Precondition Failed, or 409 ConditionalRequestConflict (a conditional write racing another), which
    s3fs turns into plain OSErrors: the S3 response is their cause."""
    response = getattr(err.__cause__, "response", None) or {}
    code = (response.get("Error") or {}).get("Code")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def _read_body(fs, body) -> bytes:
    from fsspec.asyn import sync

    async def read():
        async with body as stream:
            return await stream.read()

    return sync(fs.loop, read)


class Lease:
    """A held lease, renewed by a daemon thread until `release()`."""

    def __init__(self, folder: LockFolder, name: str, holder: dict, etag: str, lease_s: float):
        self.folder, self.name, self.holder, self.etag, self.lease_s = folder, name, holder, etag, lease_s
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"kdcache-lease-{name}", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise if the lease was lost: the run must not mark more work done."""
        if self.lost:
            raise KdcacheError(self.lost)

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        found = None if self.lost else self.folder.read(self.name)
        if found is not None and found[1] == self.etag:  # still ours: a successor's lease is never deleted
            self.folder.delete(self.name)

    def _renew(self) -> None:
        where = f"s3://{self.folder.bucket}/{self.folder.prefix}{self.name}"
        while not self._stop.wait(self.lease_s / 4):
            holder = {**self.holder, "expires": time.time() + self.lease_s}
            try:
                etag = self.folder.replace(self.name, holder, self.etag)
            except Exception:  # noqa: BLE001 - a network hiccup: try again until the lease runs out
                if time.time() < self.holder["expires"]:
                    continue
                etag = None
            if etag is None:
                self.lost = (f"lost the lock {where} (not renewed within its {self.lease_s:.0f} s lease, so another "
                             "run may have taken over): rerun the same command to continue")
                return
            self.holder, self.etag = holder, etag


def holder_record(lease_s: float) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot": boot_id(), "token": uuid.uuid4().hex,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv),
            "expires": time.time() + lease_s}


def live(holder: dict) -> bool:
    """Is the run that wrote `holder` still holding its lease?"""
    if time.time() > float(holder.get("expires", 0)):
        return False
    # another machine: only the expiry tells
    return holder.get("boot") != boot_id() or process_running(holder.get("pid"))


def process_running(pid) -> bool:
    """Is process `pid` on this machine running? True where that cannot be told (another user's, an odd pid)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def refused(refuse, holder: dict) -> KdcacheError:
    """`refuse(holder)`'s line, saying when the lease lapses should its holder have been killed on another machine."""
    lapses = time.strftime("%H:%M:%S", time.localtime(float(holder.get("expires", 0))))
    return KdcacheError(f"{refuse(holder)} (if that run was killed, its lease lapses at {lapses}: rerun then)")


def acquire(folder: LockFolder, name: str, refuse, wait: bool = False, lease_s: float = LEASE_S) -> Lease:
    """Take lease `name`; a live holder gets `refuse(holder)` raised, or is waited for (`wait`)."""
    while True:
        me = holder_record(lease_s)
        etag = folder.create(name, me)
        if etag is not None:
            return Lease(folder, name, me, etag, lease_s)
        found = folder.read(name)
        if found is None:
            continue  # released in between
        holder, etag = found
        if not live(holder):
            etag = folder.replace(name, me, etag)
            if etag is not None:
                log(f"taking over the lock of pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                    f"({holder.get('started', '?')}), which no longer holds it: its unfinished shards are redone")
                return Lease(folder, name, me, etag, lease_s)
            continue  # another successor was first
        if not wait:
            raise refused(refuse, holder)
        time.sleep(WAIT_S)


@contextlib.contextmanager
def writing(url: str, shard: tuple[int, int], refuse):
    """Hold the leases of a run writing shards `s % N == i` of `url` (all when N == 1); yields the `Lease`, whose
    `check()` the writer calls before it marks a shard done. Yields None where leases are not supported."""
    if not supported(url):
        yield None
        return
    folder = LockFolder(url)
    whole = shard[1] == 1
    held = acquire(folder, "writers" if whole else f"shard-{shard[0]}-of-{shard[1]}", refuse)
    try:
        names = [n for n in folder.names("shard-")] if whole else ["writers"]
        for name in names:
            found = folder.read(name)
            if found is not None and live(found[0]):
                raise refused(refuse, found[0])
        yield held
    finally:
        held.release()


@contextlib.contextmanager
def creating(url: str, refuse):
    """Hold the `create` lease of `url`, waiting for a run that holds it."""
    if not supported(url):
        yield
        return
    held = acquire(LockFolder(url), "create", refuse, wait=True)
    try:
        yield
    finally:
        held.release()

"""The one exception type a user can cause.

Library code raises `KdcacheError` with a single line that names the problem *and the fix*;
the CLI prints that line and exits non-zero instead of showing a traceback. OS errors on the paths a user
chose (full disk, read-only filesystem, a folder below a plain file) get the same treatment through
`writing_to`, `check_writable` and the CLI's last-resort handler.
"""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


class KdcacheError(Exception):
    """A user-facing error: bad path, wrong split name, missing weights, mismatched cache, ..."""

    def __init__(self, *args):
        # torch's DataLoader re-raises a worker's error as `type(err)("Caught ... Original Traceback ...")`: keep the
        # one line the worker raised (the traceback's last line, after the class name), not the traceback
        text = args[0] if len(args) == 1 and isinstance(args[0], str) else ""
        if text.startswith("Caught ") and "\nOriginal Traceback" in text:
            args = (text.rstrip().splitlines()[-1].split(": ", 1)[-1],)
        super().__init__(*args)


class BadSampleError(KdcacheError):
    """One sample cannot be read (corrupt image, missing file, size mismatch, ...).

    Readers raise it from `__getitem__`; long runs over unlabeled data skip and count such samples,
    labeled splits (or `--strict`) let it stop the run.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# Hints for the OS errors a user causes with an output path; any other errno gets the path and reason only.
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def describe_os_error(err: OSError, path=None, rerun: str = "rerun the same command") -> str:
    """`<path>: <reason>[: <fix>]` for an OSError. `path` is the output the user named: it is named when the error
    has no file name or its file lies inside `path` (a staging folder, a shard file: kdcache's business, not the
    user's), else the error's own file is."""
    where = path if err.filename is None or _inside(err.filename, path) else err.filename
    reason = err.strerror or str(err) or type(err).__name__
    line = f"{where}: {reason}" if where is not None else reason
    if err.errno in _FULL:
        return f"{line}: free space there, then {rerun}"
    if err.errno in _UNWRITABLE:
        return f"{line}: choose a writable location"
    return line


def _inside(filename, output) -> bool:
    """Whether `filename` is part of `output`: a file below it, or its temporary sibling (`kdcache.atomic`'s
    `.NAME.<random>.partial` names)."""
    if output is None:
        return False
    try:
        filename, output = os.path.abspath(os.fsdecode(filename)), os.path.abspath(os.fsdecode(output))
        sibling = os.path.basename(filename).startswith(f".{os.path.basename(output)}.")
        return os.path.commonpath([filename, output]) == output or (
            sibling and os.path.dirname(filename) == os.path.dirname(output))
    except (TypeError, ValueError):  # a URL or bytes next to text: not a local path inside the output
        return False


def disk_error(err: BaseException) -> OSError | None:
    """The full-disk / read-only OSError behind `err` (itself, or what it was raised from), if any.

    Libraries that wrap I/O errors in their own types (ONNX exporters) hide them; this digs them out.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in _FULL + _UNWRITABLE:
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


@contextmanager
def writing_to(path, rerun: str = "rerun the same command"):
    """Turn an OSError raised while writing `path` into one `KdcacheError` line (path, reason, fix)."""
    try:
        yield
    except OSError as err:
        raise KdcacheError(describe_os_error(err, path, rerun)) from err


def check_writable(path, what: str = "--out", folder: bool = True) -> None:
    """Fail now, before any work, if `path` (a folder, or a file when not `folder`) cannot be written.

    Probes with a temporary folder in `path` itself if it is a folder, else in its nearest existing ancestor,
    and removes the probe: nothing is left behind either way (a path below /proc, on a read-only
    filesystem, below a plain file, or without permission all fail here).
    """
    path = Path(path).expanduser().absolute()
    if path.exists() and path.is_dir() != folder:
        kind = "a file, not a folder" if folder else "a folder, not a file"
        raise KdcacheError(f"{path}: is {kind} (cannot write {what} there): choose another {what}")
    base = path if path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    try:
        if not base.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{base} is a file, not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".kdcache-probe-", dir=base))
    except OSError as err:
        reason = err.strerror or str(err)
        fix = "choose another location" if err.errno not in _FULL else "free space there"
        raise KdcacheError(f"{path}: {reason} (cannot write {what} there): {fix}") from None

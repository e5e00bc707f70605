"""The one exception type a user can cause.

Library code raises `KdcacheError` with a single line that names the problem *and the fix*;
the CLI prints that line and exits non-zero instead of showing a traceback.
"""


class KdcacheError(Exception):
    """A user-facing error: bad path, wrong split name, missing weights, mismatched cache, ..."""


class BadSampleError(KdcacheError):
    """One sample cannot be read (corrupt image, missing file, size mismatch, ...).

    Readers raise it from `__getitem__`; long runs over unlabeled data skip and count such samples,
    labeled splits (or `--strict`) let it stop the run.
    """

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

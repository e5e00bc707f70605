"""Where a dataset is expected under the data root, the one-line error when it is not there, and file names as
text (`path_text`: the ids of files that readers such as `folder:` identify by their path)."""

from __future__ import annotations

import os
from pathlib import Path, PurePath

from kdcache.errors import KdcacheError


_ROOT_ORIGIN = "(from --data-root, else $KDCACHE_DATA, else ./data)"


def missing_data(dataset: str, root: Path, expected: list[Path], fix: str, need_all: bool = False) -> KdcacheError:
    """A `KdcacheError` naming the data root, every path that was looked for, and how to get the data.

    `need_all`: the dataset needs every one of `expected` (else any one of them is enough).
    """
    looked = (" and " if need_all else " or ").join(str(p) for p in expected)
    state = "does not exist" if not root.exists() else "does not hold it"
    return KdcacheError(f"{dataset} not found: data root {root} {_ROOT_ORIGIN} {state}; expected {looked}; {fix}, "
                        f"or point --data-root / $KDCACHE_DATA at the folder that holds it")


def incomplete_data(dataset: str, missing: list[Path], total: int, fix: str) -> KdcacheError:
    """A `KdcacheError` for a dataset folder that exists but lacks some listed files."""
    return KdcacheError(f"{dataset} is incomplete: {len(missing)} of {total} listed files are missing "
                        f"(first: {missing[0]}); {fix}")


def path_text(path: str | os.PathLike) -> str:
    """`path` as UTF-8 text that names it faithfully: a sample id, a store can hold it.

    A name that is valid UTF-8 is returned as is (ids stay what they always were). A name that is not (Python
    reads its stray bytes as surrogates, which UTF-8 cannot encode) gets its backslashes doubled and each stray
    byte written `\\xNN`, so the text maps back to the exact bytes (Python's `codecs.escape_decode`).
    """
    text = path.as_posix() if isinstance(path, PurePath) else os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        escaped = text.replace("\\", "\\\\")
        return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in escaped)

"""Where a dataset is expected under the data root, and the one-line error when it is not there."""

from __future__ import annotations

from pathlib import Path

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

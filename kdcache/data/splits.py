"""The split registry: names like `nyu-test`, `synth-train[:200]` or `folder:/data/x` -> datasets.

A split factory is registered once with `@register_split("name")` and receives the data root plus any
reader options; `open_split` resolves the name, strips an HF-datasets style slice and applies it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from kdcache.data.sample import Sample
from kdcache.errors import KdcacheError
from kdcache.registry import Registry

SPLITS: Registry = Registry("split", list_command="kdcache data list")
register_split = SPLITS.register

_SLICE = re.compile(r"^(?P<name>.+?)\[(?P<start>-?\d*):(?P<stop>-?\d*)\]$")


@runtime_checkable
class SplitDataset(Protocol):
    """What every split factory returns: a sized, indexable sequence of `Sample`s.

    `labeled` says whether samples carry ground truth; `space` is the GT space of the split
    ("depth" metres or "disparity"), None for unlabeled splits.
    """

    name: str
    labeled: bool
    space: str | None

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


class SlicedSplit(Sequence[Sample]):
    """A contiguous view `[start:stop]` of a split that keeps its name, labels and space."""

    def __init__(self, base: SplitDataset, start: int, stop: int, name: str):
        self.base, self.start, self.stop, self.name = base, start, stop, name
        self.labeled = base.labeled
        self.space = base.space

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.base[self.start + index % len(self)]

    def __iter__(self) -> Iterator[Sample]:
        """The base split's policy for unreadable samples (skip and count, or stop), not Sequence's."""
        return iter_samples(self, skipped=getattr(self.base, "skipped", None))

    def __getattr__(self, attr: str) -> Any:
        # Reader specific helpers (e.g. `ids`, `paths`) stay reachable through the view. `base` itself is
        # not there yet while unpickling (spawned DataLoader workers): no recursion then.
        if attr == "base":
            raise AttributeError(attr)
        return getattr(self.base, attr)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """`root`, else `$KDCACHE_DATA`, else `./data`."""
    return Path(root or os.environ.get("KDCACHE_DATA") or "data").expanduser()


def parse_split(spec: str) -> tuple[str, slice | None]:
    """`"nyu-test[10:20]"` -> `("nyu-test", slice(10, 20))`; no slice -> `(spec, None)`."""
    match = _SLICE.match(spec)
    if not match:
        if "[" in spec and spec.endswith("]") and not _names_a_path(spec):
            raise KdcacheError(f"bad split slice in '{spec}': use NAME[start:stop], e.g. synth-train[:200]")
        return spec, None
    to_int = lambda s: int(s) if s else None  # noqa: E731
    return match["name"], slice(to_int(match["start"]), to_int(match["stop"]))


def _names_a_path(spec: str) -> bool:
    """`folder:PATH`-style specs: their path may hold brackets of its own."""
    return any(spec.startswith(name) for name in list_splits() if name.endswith(":"))


def open_split(name: str, root: str | os.PathLike | None = None, **options: Any) -> SplitDataset:
    """Open a registered split, optionally sliced: `open_split("synth-train[:200]")`.

    `root` defaults to `$KDCACHE_DATA`, else `./data`. Reader options (e.g. `size=(240, 320)` for
    the synthetic world, `gt="depths"` for NYU, `strict=True`) are passed to the split's factory.
    """
    base_name, window = parse_split(name)
    dataset = SPLITS.create(base_name, data_root(root), **options)
    if window is None:
        return dataset
    start, stop, step = window.indices(len(dataset))
    if step != 1:
        raise KdcacheError(f"split slices take no step: '{name}'")
    return SlicedSplit(dataset, start, max(start, stop), name)


def list_splits() -> list[str]:
    """Registered split names; prefix entries such as `folder:` are listed with their colon."""
    return SPLITS.names(include_prefixes=True)


def iter_samples(dataset: SplitDataset, strict: bool | None = None, skipped: list | None = None) -> Iterator[Sample]:
    """Iterate a split, skipping unreadable samples unless `strict` (their reasons go to `skipped`).

    `strict=None` follows the split's own policy (`dataset.strict`, else whether it is labeled): labeled splits
    stop on a bad sample, `folder:` aux data skips and counts.
    """
    from kdcache.errors import BadSampleError

    if strict is None:
        strict = bool(getattr(dataset, "strict", getattr(dataset, "labeled", True)))
    for index in range(len(dataset)):
        try:
            yield dataset[index]
        except BadSampleError as err:
            if strict:
                raise
            if skipped is not None:
                skipped.append(err)

"""What `kdcache data list` and `kdcache data show` report: which splits are present, and what one looks like."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from kdcache.atomic import replacing
from kdcache.data.splits import SPLITS, list_splits, open_split
from kdcache.depth_colors import DEPTH_CMAP, colorize, display_range, with_legend
from kdcache.errors import KdcacheError

PERCENTILES = (2, 50, 98)


@dataclass
class SplitStatus:
    """One row of `kdcache data list`."""

    name: str
    count: int | None  # None: the data is not present (or the entry is a pattern such as `folder:`)
    labeled: bool | None
    space: str | None
    problem: str = ""
    expected: int | None = None  # the full dataset's size, where its registration states it


def split_statuses(root: str | os.PathLike | None = None) -> list[SplitStatus]:
    """Every registered split with its size where its data is present, else the reason it cannot be opened."""
    rows = []
    for name in list_splits():
        info = SPLITS.info(name)
        if name.endswith(":"):
            rows.append(SplitStatus(name + "PATH", None, info.get("labeled"), info.get("space"), "pattern"))
            continue
        try:
            dataset = open_split(name, root)
        except KdcacheError as err:
            rows.append(SplitStatus(name, None, info.get("labeled"), info.get("space"), str(err), info.get("count")))
            continue
        rows.append(SplitStatus(name, len(dataset), dataset.labeled, dataset.space, expected=info.get("count")))
    return rows


@dataclass
class SplitView:
    """What `kdcache data show` prints about one sample of a split (and where its picture went)."""

    split: str
    count: int
    index: int
    id: str
    image_size: tuple[int, int]  # (H, W)
    labeled: bool
    space: str | None
    valid_fraction: float | None = None
    depth_range: dict[str, float] = field(default_factory=dict)  # min, p2, p50, p98, max over valid pixels
    out: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _write_png(picture: np.ndarray, out: Path) -> None:
    with replacing(out) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")


def default_out(split: str, index: int) -> Path:
    return Path(f"{re.sub(r'[^A-Za-z0-9._-]+', '_', split).strip('_')}-{index}.png")


def show_split(split: str, root: str | os.PathLike | None = None, index: int = 0, out: str | os.PathLike | None = None,
               cmap: str = DEPTH_CMAP, **options: Any) -> SplitView:
    """Open `split`, read sample `index`, summarise it and write `RGB | colormapped depth` to `out` (PNG)."""
    dataset = open_split(split, root, **options)
    if not len(dataset):
        raise KdcacheError(f"split '{split}' is empty: check the slice or the data folder")
    if not -len(dataset) <= index < len(dataset):
        raise KdcacheError(f"index {index} is out of range for '{split}' ({len(dataset)} samples): use 0..{len(dataset) - 1}")
    index %= len(dataset)
    sample = dataset[index]
    view = SplitView(split, len(dataset), index, sample.id, sample.image.shape[:2], sample.labeled, sample.space,
                     meta=sample.meta)
    panels = [sample.image]
    if sample.labeled:
        valid = sample.valid if sample.valid is not None else np.isfinite(sample.depth)
        view.valid_fraction = float(valid.mean())
        if valid.any():
            values = sample.depth[valid]
            stats = np.percentile(values, PERCENTILES)
            view.depth_range = {"min": float(values.min()), **{f"p{p}": float(v) for p, v in zip(PERCENTILES, stats)},
                                "max": float(values.max())}
        low, high = display_range(sample.depth, valid)
        # Near is bright in both spaces: a depth map's range is reversed (high disparity = near = bright already).
        bounds = (high, low) if sample.space == "depth" else (low, high)
        panels.append(colorize(sample.depth, *bounds, cmap=cmap, valid=valid))
        labels = (f"{low:.2g} m", f"{high:.2g} m") if sample.space == "depth" else ("near", "far")
    picture = np.concatenate(panels, axis=1)
    view.out = Path(out) if out is not None else default_out(split, index)
    _write_png(with_legend(picture, *labels, cmap) if sample.labeled else picture, view.out)
    return view

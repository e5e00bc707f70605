"""Depth maps as pictures: the one colour mapping behind `kdcache infer` (images and videos) and `kdcache data show`.

Values are scaled linearly between a low and a high bound, usually the 2nd and 98th percentiles of the picture
(`display_range`), so a few extreme pixels do not wash out the map, and drawn through a matplotlib colormap.
"""

from __future__ import annotations

import numpy as np

from kdcache.errors import KdcacheError


def to_nearness(pred: np.ndarray, space: str) -> np.ndarray:
    """Larger = nearer, for display: 1/depth for metric predictions, disparity as is."""
    return 1.0 / np.maximum(pred, 1e-6) if space == "depth" else pred


def display_range(values: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """Robust colour range: the 2nd and 98th percentiles of the finite (and `valid`) values; (0, 1) if none."""
    usable = np.isfinite(values) if valid is None else np.isfinite(values) & valid
    lo, hi = np.percentile(values[usable], [2, 98]) if usable.any() else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1e-6))


def colorize(values: np.ndarray, lo: float, hi: float, cmap: str = "inferno",
             valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8: `lo` gets the colormap's first colour, `hi` its last (pass them swapped to
    reverse it); values beyond are clipped, NaN takes the first colour, pixels outside `valid` are black."""
    from matplotlib import colormaps

    if cmap not in colormaps:
        raise KdcacheError(f"unknown colormap '{cmap}': use e.g. inferno, magma, viridis, turbo, gray")
    span = hi - lo if abs(hi - lo) > 1e-12 else 1e-12
    scaled = np.nan_to_num(np.clip((values - lo) / span, 0.0, 1.0))
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)
    if valid is not None:
        rgb[~valid] = 0
    return rgb


def to_levels(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W) values -> (H, W) uint8 levels 0..255 scaled as `colorize` scales them (NaN -> 0): a compact map
    that `color_table` turns into colours wherever it is shown (the live page colours them in the browser)."""
    span = hi - lo if abs(hi - lo) > 1e-12 else 1e-12
    return np.round(np.nan_to_num(np.clip((values - lo) / span, 0.0, 1.0)) * 255).astype(np.uint8)


def color_table(cmap: str | None = None) -> np.ndarray:
    """(256, 3) uint8: `colorize`'s colour for each of the 256 levels of `to_levels` (`cmap` None: its default)."""
    levels = np.linspace(0.0, 1.0, 256)[None]
    return (colorize(levels, 0.0, 1.0) if cmap is None else colorize(levels, 0.0, 1.0, cmap=cmap))[0]

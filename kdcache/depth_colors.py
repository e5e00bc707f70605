"""Depth maps as pictures: the one colour convention behind every picture kdcache draws of depth.

`kdcache infer` (images, side-by-side images, videos), `kdcache data show`, `kdcache live`, the demo's gallery and
the synthetic world's overview all colour depth here, the same way: **inferno, near = bright, far = dark**.
- inferno is perceptually uniform and its lightness rises monotonically from end to end, so the order of depths
  reads the same in greyscale, in print and for colour-blind viewers; turbo's lightness rises and falls again, so
  two very different depths can look alike and which end is near has to be learned from a legend.
- near = bright is how monocular depth models (MiDaS, DPT, Depth Anything) show their inverse-depth output, which
  is what users of those teachers already read.
Every picture with room for it carries a colour bar naming its near and far ends (`legend_strip`, or
`add_colorbar` on matplotlib axes). Values are scaled linearly between a low and a high bound, usually the 2nd and
98th percentiles of the picture (`display_range`), so a few extreme pixels do not wash out the map.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kdcache.errors import KdcacheError

DEPTH_CMAP = "inferno"  # see the module docstring for why; its last colour is the near end
LEGEND_WIDTH = 56  # pixels of the colour bar beside a side-by-side image: the gradient and its two labels


def to_nearness(pred: np.ndarray, space: str) -> np.ndarray:
    """Larger = nearer, for display: 1/depth for metric predictions, disparity as is."""
    return 1.0 / np.maximum(pred, 1e-6) if space == "depth" else pred


def display_range(values: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """Robust colour range: the 2nd and 98th percentiles of the finite (and `valid`) values; (0, 1) if none."""
    usable = np.isfinite(values) if valid is None else np.isfinite(values) & valid
    lo, hi = np.percentile(values[usable], [2, 98]) if usable.any() else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1e-6))


def smoothed_range(previous: np.ndarray | None, values: np.ndarray, keep: float) -> np.ndarray:
    """A stream's colour range: this frame's `display_range` blended into the previous frame's range, which weighs
    `keep`, so that colours do not flicker from frame to frame (infer's videos, the live page)."""
    current = np.array(display_range(values))
    return current if previous is None else keep * previous + (1 - keep) * current


def _colormap(cmap: str):
    from matplotlib import colormaps

    if cmap not in colormaps:
        raise KdcacheError(f"unknown colormap '{cmap}': use e.g. inferno, magma, viridis, turbo, gray")
    return colormaps[cmap]


def lookup_table(cmap: str = DEPTH_CMAP, size: int = 256) -> np.ndarray:
    """(size, 3) uint8 colours from far (row 0) to near (last row): what a page colouring depth itself (the live
    view, in the browser) indexes with the nearness scaled to 0..size-1, to draw exactly what `colorize` draws."""
    return (_colormap(cmap)(np.linspace(0.0, 1.0, size))[:, :3] * 255).round().astype(np.uint8)


def colorize(values: np.ndarray, lo: float, hi: float, cmap: str = DEPTH_CMAP,
             valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W) values -> (H, W, 3) uint8: `lo` gets the colormap's first (far) colour, `hi` its last (near); pass
    them swapped for values where larger is farther (depth in metres). Values beyond are clipped, NaN takes the
    first colour, pixels outside `valid` are black."""
    colormap = _colormap(cmap)
    span = hi - lo if abs(hi - lo) > 1e-12 else 1e-12
    scaled = np.nan_to_num(np.clip((values - lo) / span, 0.0, 1.0))
    rgb = (colormap(scaled)[..., :3] * 255).round().astype(np.uint8)
    if valid is not None:
        rgb[~valid] = 0
    return rgb


def to_levels(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W) values -> (H, W) uint8 levels 0..255 scaled as `colorize` scales them (NaN -> 0): a compact map
    that `lookup_table` turns into colours wherever it is shown (the live page colours them in the browser)."""
    span = hi - lo if abs(hi - lo) > 1e-12 else 1e-12
    return np.round(np.nan_to_num(np.clip((values - lo) / span, 0.0, 1.0)) * 255).astype(np.uint8)


def range_labels(lo: float, hi: float, space: str) -> tuple[str, str]:
    """The (near, far) labels of a colour bar over nearness `lo`..`hi`: metres for metric depth, else words."""
    if space == "depth":
        return f"{1.0 / max(hi, 1e-6):.2g} m", f"{1.0 / max(lo, 1e-6):.2g} m"
    return "near", "far"


@lru_cache(maxsize=32)  # a video draws the same bar on every frame: its height and labels rarely change
def legend_strip(height: int, near: str = "near", far: str = "far", cmap: str = DEPTH_CMAP) -> np.ndarray:
    """A (height, LEGEND_WIDTH, 3) uint8 colour bar on black: the near colour at the top, the far one at the bottom,
    each end labelled (`range_labels`), for pasting beside a coloured depth map."""
    from PIL import Image, ImageDraw

    strip = np.zeros((height, LEGEND_WIDTH, 3), np.uint8)
    ramp = lookup_table(cmap, max(height, 2))[::-1]  # near at the top
    strip[:, 4:16] = ramp[np.linspace(0, len(ramp) - 1, height).round().astype(int)][:, None]
    picture = Image.fromarray(strip)
    draw = ImageDraw.Draw(picture)
    draw.text((19, 1), near, fill=(255, 255, 255))
    draw.text((19, max(height - 12, 12)), far, fill=(255, 255, 255))
    strip = np.asarray(picture)
    strip.flags.writeable = False  # shared by every caller (cached)
    return strip


def with_legend(picture: np.ndarray, near: str = "near", far: str = "far", cmap: str = DEPTH_CMAP) -> np.ndarray:
    """`picture` (H, W, 3) with `legend_strip` appended on its right."""
    return np.concatenate([picture, legend_strip(picture.shape[0], near, far, cmap)], axis=1)


def matplotlib_depth(lo_m: float, hi_m: float, cmap: str = DEPTH_CMAP) -> dict:
    """`imshow` arguments for metric depth from `lo_m` (near, drawn bright) to `hi_m` metres (far, dark)."""
    return {"cmap": _colormap(cmap).reversed(), "vmin": lo_m, "vmax": hi_m}


def add_colorbar(fig, axes, image, label: str = "depth (m): bright = near") -> None:
    """A colour bar for `image` (an `imshow` result drawn with `matplotlib_depth`) beside `axes`."""
    bar = fig.colorbar(image, ax=axes, fraction=0.04, pad=0.01)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)

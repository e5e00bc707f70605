"""Which dataset an image comes from decides its evaluation crop and depth range (BTS bts_eval.py,
ZoeDepth zoedepth/utils/config.py).

NYU: Eigen crop, 1e-3 < g < 10 m. KITTI: Garg crop, 1e-3 < g < 80 m. The synthetic world: no crop and
its own cap (from sample meta, else 10 m as an indoor scene). Anything else: no crop, 10 m unless the
sample meta or the caller says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from kdcache.errors import KdcacheError

MIN_DEPTH = 1e-3
_DEFAULTS = {  # kind -> (crop, max depth in metres)
    "nyu": ("eigen", 10.0),
    "kitti": ("garg", 80.0),
    "synth": (None, 10.0),
    "other": (None, 10.0),
}
_META_CAP_KEYS = ("max_depth", "depth_cap", "max_depth_m")


@dataclass(frozen=True)
class DatasetContext:
    """What a protocol needs to know about the dataset: its name, evaluation crop and depth range."""

    kind: str
    crop: str | None
    min_depth: float
    max_depth: float


def dataset_kind(split_name: str, meta: Mapping[str, Any] | None = None) -> str:
    """`nyu` / `kitti` / `synth` / `other`, from the sample meta's `dataset` (or `source`) or the split name."""
    declared = str((meta or {}).get("dataset") or (meta or {}).get("source") or "").lower()
    for text in (declared, split_name.lower()):
        for kind in ("nyu", "kitti", "synth"):
            if text.startswith(kind):
                return kind
    return "other"


def dataset_context(
    split_name: str,
    meta: Mapping[str, Any] | None = None,
    crop: str | None = "auto",
    max_depth: float | None = None,
) -> DatasetContext:
    """The context for one sample; `crop`/`max_depth` override the dataset defaults when given."""
    kind = dataset_kind(split_name, meta)
    default_crop, cap = _DEFAULTS[kind]
    for key in _META_CAP_KEYS:
        if meta and meta.get(key):
            cap = float(meta[key])
            break
    chosen_crop = default_crop if crop == "auto" else (None if crop in (None, "none") else crop)
    if chosen_crop is not None and chosen_crop not in CROPS:
        raise KdcacheError(f"unknown evaluation crop '{chosen_crop}': use one of auto, none, {', '.join(CROPS)}")
    context = DatasetContext(kind, chosen_crop, MIN_DEPTH, float(max_depth or cap))
    if context.max_depth <= context.min_depth:
        raise KdcacheError(f"max depth {context.max_depth} must exceed {MIN_DEPTH} m: pass a larger --max-depth")
    return context


def _nyu_eigen(shape: tuple[int, int]) -> tuple[slice, slice]:
    # The exact BTS/ZoeDepth indices at 480x640; other sizes get the same fractions of the frame.
    h, w = shape
    if (h, w) == (480, 640):
        return slice(45, 471), slice(41, 601)
    return slice(round(45 / 480 * h), round(471 / 480 * h)), slice(round(41 / 640 * w), round(601 / 640 * w))


def _kitti_fraction(rows: tuple[float, float]):
    def crop(shape: tuple[int, int]) -> tuple[slice, slice]:
        h, w = shape
        # int() truncation as in the BTS / ZoeDepth code, on the GT a protocol scores: the full 375x1242 frame
        # -> [153:371, 44:1197] (BTS, `metric`), the 352x1216 KB crop -> [143:349, 43:1172] (ZoeDepth).
        return slice(int(rows[0] * h), int(rows[1] * h)), slice(int(0.03594771 * w), int(0.96405229 * w))

    return crop


CROPS = {
    "eigen": _nyu_eigen,  # NYU Eigen crop
    "garg": _kitti_fraction((0.40810811, 0.99189189)),  # KITTI Garg crop
    "eigen-kitti": _kitti_fraction((0.3324324, 0.91351351)),  # KITTI Eigen crop
}


def crop_mask(crop: str | None, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask of `shape`, True inside the named evaluation crop (all True for None)."""
    mask = np.zeros(shape, dtype=bool)
    if crop is None:
        mask[:] = True
        return mask
    rows, cols = CROPS[crop](shape)
    mask[rows, cols] = True
    return mask

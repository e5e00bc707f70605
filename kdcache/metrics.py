"""Depth metrics exactly as BTS / AdaBins / ZoeDepth compute them (BTS pytorch/bts_eval.py compute_errors,
ZoeDepth zoedepth/utils/misc.py compute_errors).

Every metric is computed on the valid pixels of *one* image in float64; a split's score is the mean
of the per-image values (`mean_metrics`). DenseDepth-style pooling over all pixels of all images gives
different numbers and is deliberately not offered.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from kdcache.errors import KdcacheError

METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "d1", "d2", "d3")
# For tables and model selection: δ accuracies go up, every error goes down.
HIGHER_IS_BETTER = frozenset({"d1", "d2", "d3"})


class NoValidPixels(KdcacheError):
    """An image has no pixel to score (all GT invalid or outside the range/crop); evaluation counts and skips it."""


def depth_metrics(pred, gt, valid=None, delta_inclusive: bool = False) -> dict[str, float]:
    """The nine standard metrics of one image on the pixels where `valid` (and g > 0) holds.

    pred, gt: arrays of one shape, in metres (or both in one disparity space for relative scoring).
    valid: optional bool mask of that shape. `delta_inclusive` uses `<=` in δ, Hu et al.'s variant;
    the literature's default (BTS, AdaBins, ZoeDepth) is strict `<`.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise KdcacheError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}: resize the prediction first")
    mask = np.isfinite(gt) & (gt > 0)
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != gt.shape:  # numpy would broadcast a (W,) mask over every row, or fail without saying why
            raise KdcacheError(f"valid mask shape {valid.shape} != ground truth shape {gt.shape}: "
                               f"pass one boolean per ground-truth pixel")
        mask &= valid
    if not mask.any():
        raise NoValidPixels("no valid ground-truth pixel in this image: check the valid mask and depth range")
    p, g = pred[mask], gt[mask]
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise KdcacheError("predictions must be finite and > 0 on valid pixels: clamp them to the protocol's depth range first")
    return _metrics_on_pixels(p, g, delta_inclusive)


def _metrics_on_pixels(p: np.ndarray, g: np.ndarray, delta_inclusive: bool) -> dict[str, float]:
    ratio = np.maximum(g / p, p / g)
    below = np.less_equal if delta_inclusive else np.less
    diff = g - p
    log_err = np.log(p) - np.log(g)
    silog_var = max(np.mean(log_err**2) - np.mean(log_err) ** 2, 0.0)  # rounding can make it -1e-17
    return {
        "abs_rel": float(np.mean(np.abs(diff) / g)),
        "sq_rel": float(np.mean(diff**2 / g)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_err**2))),
        "log10": float(np.mean(np.abs(np.log10(g) - np.log10(p)))),
        "silog": float(100.0 * np.sqrt(silog_var)),
        "d1": float(np.mean(below(ratio, 1.25))),
        "d2": float(np.mean(below(ratio, 1.25**2))),
        "d3": float(np.mean(below(ratio, 1.25**3))),
    }


def mean_metrics(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over images (BTS, AdaBins, ZoeDepth and Hu et al. all average per image)."""
    rows = list(per_image)
    if not rows:
        raise KdcacheError("no image could be scored: every image lacked valid ground truth")
    return {key: float(np.mean([row[key] for row in rows])) for key in METRIC_KEYS}

"""Per-image least-squares scale and shift: the MiDaS / DPT zero-shot alignment of relative predictions."""

from __future__ import annotations

import numpy as np

from kdcache.metrics import NoValidPixels


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(s, t) minimising sum over `mask` of (s * pred + t - target)^2, solved in closed form (float64).

    Same normal equations as MiDaS' `compute_scale_and_shift`; a constant prediction (singular
    system) gets scale 0 and the target mean as shift rather than a crash.
    """
    p = np.asarray(pred, dtype=np.float64)[mask]
    y = np.asarray(target, dtype=np.float64)[mask]
    if p.size == 0:
        raise NoValidPixels("no valid pixel to align the prediction on: check the ground truth's valid mask")
    a00, a01, a11 = np.dot(p, p), p.sum(), float(p.size)
    b0, b1 = np.dot(p, y), y.sum()
    det = a00 * a11 - a01 * a01
    if det <= 1e-12 * max(a00 * a11, 1e-300):
        return 0.0, float(y.mean())
    scale = (a11 * b0 - a01 * b1) / det
    shift = (-a01 * b0 + a00 * b1) / det
    return float(scale), float(shift)

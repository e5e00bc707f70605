"""Per-image least-squares scale and shift: the one fit behind every scale-and-shift alignment in kdcache.

Relative (affine-invariant) predictions only mean something up to a scale s and a shift t, so they are aligned
per image with the (s, t) minimising the sum over valid pixels of (s * pred + t - target)^2, solved in closed
form from the 2x2 normal equations as MiDaS' `compute_scale_and_shift` does (Ranftl et al. 2020, and the
`midas/loss.py` of their code). Three users share it, so they can never disagree:
- the aligned protocols of `kdcache eval` (`evaluate/protocols.py`; numpy, converted at the call),
- the validation AbsRel that picks `checkpoints/best` (`train/validate.py`),
- the `lstsq` alignment of the relative distillation losses (`losses/align.py`), which back-propagate through it.

The singular case has one rule: where the prediction is constant over the mask (the determinant is at most
1e-12 of its scale, in float64), no scale is identifiable, so the fit is scale 0 and shift the target's mean over
the mask: the best constant, and what the full least-squares problem gives for the shift once s = 0. An image
with no valid pixel gets scale 0 and shift 0; callers that score images skip those.
"""

from __future__ import annotations

import torch

SINGULAR = 1e-12  # relative: det <= SINGULAR * a00 * a11 counts as singular


def fit_scale_shift(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each (B,) float64, per image of `pred`/`target`/`mask` shaped (B, ...).

    Computed in float64 whatever the input dtype (the determinant cancels catastrophically in float32) and
    differentiable in `pred` and `target`. Pixels outside `mask` may hold anything, inf and NaN included.
    """
    mask = mask.flatten(1)
    zero = torch.zeros((), dtype=torch.float64, device=pred.device)
    p = torch.where(mask, pred.flatten(1).double(), zero)
    y = torch.where(mask, target.flatten(1).double(), zero)
    a00, a01, a11 = (p * p).sum(1), p.sum(1), mask.sum(1).double()
    b0, b1 = (p * y).sum(1), y.sum(1)
    det = a00 * a11 - a01 * a01
    ok = det > SINGULAR * a00 * a11
    safe = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (a11 * b0 - a01 * b1) / safe, torch.zeros_like(det))
    shift = torch.where(ok, (a00 * b1 - a01 * b0) / safe, b1 / a11.clamp_min(1.0))
    return scale, shift

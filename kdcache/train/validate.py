"""The cheap validation metric that picks `checkpoints/best`: AbsRel against GT on a store split.

A metric student ("depth" output) is scored as is. A relative student ("disparity" output: only 1/output
means anything, up to scale and shift) is aligned per image the MiDaS/DPT way: least-squares scale and
shift of its disparity to 1/GT on valid pixels, clamped at 1/cap, inverted, then scored in depth space.
GT in disparity space (HR-WSI-like) is compared in disparity space after the same alignment.
This is the model-selection signal only; `kdcache eval` runs the literature's full protocols.
"""

from __future__ import annotations

import torch

from kdcache.scale_shift import fit_scale_shift

EPS = 1e-6


def align_disparity(disparity: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image least squares `s * disparity + t ~ target` over `mask` (`kdcache.scale_shift`, the fit the
    aligned protocols of `kdcache eval` use); all (B, N) float64."""
    scale, shift = fit_scale_shift(disparity, target, mask)
    return scale[:, None] * disparity.double() + shift[:, None]


def batch_abs_rel(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor, output_space: str,
                  gt_space: str = "depth") -> list[float]:
    """Per-image AbsRel of (B, 1, H, W) predictions; images without a valid pixel are skipped."""
    pred = pred.flatten(1).double().clamp_min(EPS)
    gt = gt.flatten(1).double()
    mask = valid.flatten(1) & (gt > EPS) & torch.isfinite(gt)
    if gt_space == "disparity":
        aligned = align_disparity(1.0 / pred, gt, mask)
        target, estimate = gt, aligned
    elif output_space == "disparity":
        cap = torch.where(mask, gt, torch.zeros_like(gt)).amax(1, keepdim=True).clamp_min(EPS)
        aligned = align_disparity(1.0 / pred, 1.0 / gt.clamp_min(EPS), mask)
        target, estimate = gt, 1.0 / torch.maximum(aligned, 1.0 / cap)
    else:
        target, estimate = gt, pred
    errors = ((estimate - target).abs() / target.abs().clamp_min(EPS)) * mask
    counts = mask.sum(1)
    return [float(e / c) for e, c in zip(errors.sum(1), counts) if c > 0]

"""Scale-and-shift alignment for relative (affine-invariant) disparity, as in MiDaS (Ranftl et al. 2020).

Two per-image alignments, both computed over masked pixels only:
- `normalise` (the default, MiDaS's "ssitrim"-style estimator without trimming): subtract the median, divide by
  the mean absolute deviation from it. Applied to *both* maps, so the loss is invariant to scale and shift of
  either, and its magnitude does not depend on the teacher's arbitrary output range.
- `lstsq_align`: the closed-form least-squares scale s and shift t with s * x + t ~ y (MiDaS "ssimse").
"""

from __future__ import annotations

import torch

from kdcache.losses.masking import EPS
from kdcache.scale_shift import fit_scale_shift


def masked_median(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image median of the masked pixels, shape (B, 1, 1, 1) (0 for an image without pixels)."""
    values = torch.where(mask, x, torch.full_like(x, float("nan"))).flatten(1)
    median = values.nanmedian(dim=1).values
    return torch.nan_to_num(median, nan=0.0).view(-1, 1, 1, 1)


def normalise(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(x - median) / mean|x - median| per image, over masked pixels."""
    shift = masked_median(x, mask)
    weight = mask.to(x.dtype)
    count = weight.flatten(1).sum(1).clamp_min(1.0)
    scale = (torch.abs(x - shift) * weight).flatten(1).sum(1) / count
    return (x - shift) / scale.clamp_min(EPS).view(-1, 1, 1, 1)


def lstsq_align(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """s * x + t with per-image (s, t) minimising sum over mask of (s x + t - y)^2 (`kdcache.scale_shift`: where
    x is constant over the mask, s = 0 and t = the mean of y)."""
    scale, shift = fit_scale_shift(x, y, mask)
    return scale.to(x.dtype).view(-1, 1, 1, 1) * x + shift.to(x.dtype).view(-1, 1, 1, 1)


ALIGNMENTS = ("median", "lstsq")


def aligned_disparity_pair(student_disparity: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor,
                           align: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(student, reference) in a common scale-and-shift-free space.

    median: both median/MAD-normalised. lstsq: the reference median/MAD-normalised (fixing the loss scale) and
    the student least-squares aligned onto it.
    """
    ref = normalise(reference, mask)
    if align == "median":
        return normalise(student_disparity, mask), ref
    if align == "lstsq":
        return lstsq_align(student_disparity, ref, mask), ref
    raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")

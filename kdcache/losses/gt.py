"""Ground-truth losses on labeled samples, valid pixels only (target 'gt' in metres).

- `silog`: the BTS / AdaBins scale-invariant log loss, 10 * sqrt(mean(e^2) - 0.85 * mean(e)^2), e = ln p - ln g,
  pooled over all valid pixels of the batch (as BTS does); lambda = 0.85 "variance focus", x10 scaling.
- `l1`: mean |p - g|.
- `berhu`: reverse Huber (Laina et al. 2016): |e| if |e| <= c else (e^2 + c^2) / (2c), c = 0.2 max|e| per batch.
- `gt-ssi`: for splits whose GT is relative disparity (HR-WSI): the scale-and-shift-invariant loss of `kd`
  between 1/p and the GT disparity. The metric losses above refuse disparity GT (target['gt_space']).
"""

from __future__ import annotations

import torch
from torch import nn

from kdcache.errors import KdcacheError
from kdcache.losses.align import ALIGNMENTS, aligned_disparity_pair
from kdcache.losses.masking import (EPS, gt_mask, masked_mean_per_image, mean_over_images, pred_depth,
                                    zero_like_graph)
from kdcache.losses.loss_registry import register_loss


class _MetricGTLoss(nn.Module):
    name = "gt"

    def __init__(self):
        super().__init__()

    def inputs(self, pred: dict, target: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if target.get("gt_space", "depth") != "depth":
            raise KdcacheError(f"loss '{self.name}' needs metric GT but this split's GT is "
                               f"{target['gt_space']}: use 'gt-ssi' for relative-disparity GT.")
        depth = pred_depth(pred)
        gt, mask = gt_mask(target, depth, self.name)
        return depth, gt, mask

    @staticmethod
    def pooled_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weight = mask.to(values.dtype)
        return (torch.where(mask, values, torch.zeros_like(values))).sum() / weight.sum().clamp_min(1.0)


@register_loss("silog", targets=("gt",))
class SILogLoss(_MetricGTLoss):
    name = "silog"

    def __init__(self, variance_focus: float = 0.85, scale: float = 10.0):
        super().__init__()
        self.variance_focus, self.scale = float(variance_focus), float(scale)

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        depth, gt, mask = self.inputs(pred, target)
        error = torch.log(depth.clamp_min(EPS)) - torch.log(gt)
        mean_error = self.pooled_mean(error, mask)
        mean_square = self.pooled_mean(error * error, mask)
        # Clamped: sqrt'(0) is infinite, and a perfect prediction must not produce NaN gradients.
        variance = (mean_square - self.variance_focus * mean_error * mean_error).clamp_min(1e-12)
        loss = self.scale * torch.sqrt(variance)
        return torch.where(mask.any(), loss, torch.zeros_like(loss)) + zero_like_graph(depth)


@register_loss("l1", targets=("gt",))
class L1Loss(_MetricGTLoss):
    name = "l1"

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        depth, gt, mask = self.inputs(pred, target)
        return self.pooled_mean(torch.abs(depth - gt), mask) + zero_like_graph(depth)


@register_loss("berhu", targets=("gt",))
class BerHuLoss(_MetricGTLoss):
    name = "berhu"

    def __init__(self, threshold: float = 0.2):
        super().__init__()
        self.threshold = float(threshold)

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        depth, gt, mask = self.inputs(pred, target)
        error = torch.abs(depth - gt)
        # c is a constant of the loss for this batch, as in Laina et al.: no gradient through the max.
        c = (self.threshold * torch.where(mask, error, torch.zeros_like(error)).max()).detach().clamp_min(EPS)
        values = torch.where(error <= c, error, (error * error + c * c) / (2 * c))
        return self.pooled_mean(values, mask) + zero_like_graph(depth)


@register_loss("gt-ssi", targets=("gt",))
class GTScaleShiftInvariantLoss(nn.Module):
    """Relative-disparity GT: per-image scale-and-shift-invariant L1 between 1/p and the GT disparity."""

    def __init__(self, align: str = "median"):
        super().__init__()
        if align not in ALIGNMENTS:
            raise KdcacheError(f"gt-ssi align must be one of {', '.join(ALIGNMENTS)}, got {align!r}.")
        self.align = align

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        depth = pred_depth(pred)
        gt, mask = gt_mask(target, depth, "gt-ssi", positive=False)
        student, reference = aligned_disparity_pair(1.0 / depth, gt, mask, self.align)
        per_image, present = masked_mean_per_image(torch.abs(student - reference), mask)
        return mean_over_images(per_image, present, depth)

"""Distillation of the teacher's dense map, in the teacher's own output space.

`kd` — relative teacher (teacher_space "disparity": DPT, Depth Anything): the student's disparity 1/p and the
teacher map are put in a common scale-and-shift-free space per image (`align="median"`, default: both
median/MAD-normalised; `align="lstsq"`: student least-squares aligned onto the normalised teacher, MSE as in
MiDaS), then mean |difference| (median) or mean squared difference (lstsq) over the image. Metric teacher
(teacher_space "depth", e.g. a `ckpt:` student trained on GT): a direct loss, mean |ln p - ln t| (`depth_loss=
"log-l1"`, default) or the BTS silog formula of the `silog` GT loss, per image (`depth_loss="silog"`).

`space` picks the comparison space instead of the teacher's own (`"auto"`, the default): `"ssi"` treats any
teacher as relative (the scale-and-shift-invariant disparity comparison above, for a metric teacher on 1/t);
`"disparity"` (metric teacher) compares metric disparities relative to the teacher's, per image
mean |1/p - 1/t| / mean(1/t), which weights near pixels more than a log-depth loss does; `"depth"` is the
direct log-depth comparison (metric teacher only). A relative teacher has no metric depth or disparity, so only
`auto` and `ssi` accept it.

`grad` — MiDaS's multi-scale gradient-matching loss on the residual R in the same space as `kd` (aligned
disparity difference, or ln p - ln t for a metric teacher): sum over 4 scales (pixel stride 1, 2, 4, 8) of
mean(|dR/dx| + |dR/dy|) over pixel pairs inside the mask. A constant residual (a global shift in aligned
disparity, a global scale in metric depth) costs exactly nothing: only relative structure is matched.
Each image counts once (per-image means, then the mean over images whose teacher is ok).
"""

from __future__ import annotations

import torch
from torch import nn

from kdcache.errors import KdcacheError
from kdcache.losses.align import ALIGNMENTS, aligned_disparity_pair
from kdcache.losses.masking import EPS, masked_mean_per_image, mean_over_images, pred_depth, teacher_mask
from kdcache.losses.loss_registry import register_loss

DEPTH_LOSSES = ("log-l1", "silog")
SPACES = ("auto", "depth", "disparity", "ssi")


def _check_align(loss: str, align: str) -> str:
    if align not in ALIGNMENTS:
        raise KdcacheError(f"{loss} align must be one of {', '.join(ALIGNMENTS)}, got {align!r}.")
    return align


def _check_space(loss: str, space: str) -> str:
    if space not in SPACES:
        raise KdcacheError(f"{loss} space must be one of {', '.join(SPACES)}, got {space!r}.")
    return space


def teacher_residual(pred: dict, target: dict, align: str, loss: str, space: str = "auto"):
    """(residual student - teacher in the comparison space, pixel mask, that space, depth anchor).

    The returned space is "ssi" (aligned disparity), "depth" (ln p - ln t) or "disparity" ((1/p - 1/t) / mean 1/t).
    """
    depth = pred_depth(pred)
    teacher, mask, teacher_space = teacher_mask(target, depth, loss)
    if space == "auto":
        space = "ssi" if teacher_space == "disparity" else "depth"
    if teacher_space == "disparity" and space != "ssi":
        raise KdcacheError(f"{loss} space '{space}' needs a metric teacher, but this cache's teacher is relative "
                           "(disparity up to scale and shift): use space 'auto' or 'ssi'.")
    if space == "ssi":
        reference = teacher if teacher_space == "disparity" else 1.0 / teacher
        student, reference = aligned_disparity_pair(1.0 / depth, reference, mask, align)
        return student - reference, mask, space, depth
    if space == "disparity":
        scale, _ = masked_mean_per_image(1.0 / teacher, mask)
        residual = (1.0 / depth - 1.0 / teacher) / scale.clamp_min(EPS).view(-1, 1, 1, 1)
        return residual, mask, space, depth
    return torch.log(depth.clamp_min(EPS)) - torch.log(teacher), mask, space, depth


@register_loss("kd", targets=("teacher",))
class DistillationLoss(nn.Module):
    def __init__(self, align: str = "median", depth_loss: str = "log-l1", variance_focus: float = 0.85,
                 space: str = "auto"):
        super().__init__()
        self.align, self.space = _check_align("kd", align), _check_space("kd", space)
        if depth_loss not in DEPTH_LOSSES:
            raise KdcacheError(f"kd depth_loss must be one of {', '.join(DEPTH_LOSSES)}, got {depth_loss!r}.")
        self.depth_loss, self.variance_focus = depth_loss, float(variance_focus)

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        residual, mask, space, depth = teacher_residual(pred, target, self.align, "kd", self.space)
        if space == "ssi":
            values = residual.abs() if self.align == "median" else residual * residual
            per_image, present = masked_mean_per_image(values, mask)
        elif space == "disparity" or self.depth_loss == "log-l1":
            per_image, present = masked_mean_per_image(residual.abs(), mask)
        else:
            mean, present = masked_mean_per_image(residual, mask)
            square, _ = masked_mean_per_image(residual * residual, mask)
            per_image = 10.0 * torch.sqrt((square - self.variance_focus * mean * mean).clamp_min(1e-12))
        return mean_over_images(per_image, present, depth)


def gradient_matching(residual: torch.Tensor, mask: torch.Tensor, scales: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image sum over scales of mean |grad R| on in-mask pixel pairs; and which images had any pair."""
    total = torch.zeros(residual.shape[0], device=residual.device, dtype=residual.dtype)
    present = torch.zeros(residual.shape[0], device=residual.device, dtype=torch.bool)
    r = torch.where(mask, residual, torch.zeros_like(residual))
    for scale in range(scales):
        step = 2 ** scale
        rs, ms = r[..., ::step, ::step], mask[..., ::step, ::step]
        pair_x = ms[..., :, 1:] & ms[..., :, :-1]
        pair_y = ms[..., 1:, :] & ms[..., :-1, :]
        grad_x = torch.where(pair_x, (rs[..., :, 1:] - rs[..., :, :-1]).abs(), torch.zeros_like(rs[..., :, 1:]))
        grad_y = torch.where(pair_y, (rs[..., 1:, :] - rs[..., :-1, :]).abs(), torch.zeros_like(rs[..., 1:, :]))
        count = ms.flatten(1).sum(1).to(residual.dtype).clamp_min(1.0)
        total = total + (grad_x.flatten(1).sum(1) + grad_y.flatten(1).sum(1)) / count
        present = present | pair_x.flatten(1).any(1) | pair_y.flatten(1).any(1)
    return total, present


@register_loss("grad", targets=("teacher",))
class GradientMatchingLoss(nn.Module):
    def __init__(self, align: str = "median", scales: int = 4, space: str = "auto"):
        super().__init__()
        self.align, self.space = _check_align("grad", align), _check_space("grad", space)
        self.scales = int(scales)

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        residual, mask, _, depth = teacher_residual(pred, target, self.align, "grad", self.space)
        per_image, present = gradient_matching(residual, mask, self.scales)
        return mean_over_images(per_image, present, depth)

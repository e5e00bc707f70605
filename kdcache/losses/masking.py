"""Shared plumbing for losses: reading the target dict, per-sample and per-pixel masks, safe reductions.

Every reduction is a masked sum divided by a clamped count, never boolean indexing: a batch whose samples are
all excluded then yields an exact zero that is still connected to the graph (DDP needs every parameter to get
a gradient each step), and invalid pixels are replaced *before* logs/divisions so they cannot leak NaN grads.
"""

from __future__ import annotations

from typing import Any

import torch

from kdcache.errors import KdcacheError

EPS = 1e-6


def as_map(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) -> (B, 1, H, W)."""
    return x.unsqueeze(1) if x.dim() == 3 else x


def pred_depth(pred: dict[str, Any]) -> torch.Tensor:
    """The student's depth in float32 (autocast may hand us bf16/fp16)."""
    return as_map(pred["depth"]).float()


def require(target: dict[str, Any], key: str, loss: str, fix: str) -> Any:
    if key not in target or target[key] is None:
        raise KdcacheError(f"loss '{loss}' needs target['{key}'], which this batch lacks: {fix}.")
    return target[key]


def sample_mask(flags: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """(B,) bool flags (None = all True) -> (B, 1, 1, 1) bool on like's device."""
    if flags is None:
        return torch.ones(like.shape[0], 1, 1, 1, dtype=torch.bool, device=like.device)
    return flags.to(device=like.device, dtype=torch.bool).view(-1, 1, 1, 1)


def gt_mask(target: dict[str, Any], pred: torch.Tensor, loss: str,
            positive: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(gt float32 with invalid pixels set to 1, pixel mask): labeled samples, valid, finite pixels, and positive
    ones for metric depth (disparity GT may be 0 at infinity)."""
    gt = as_map(require(target, "gt", loss, "give it labeled samples or drop this loss")).to(pred.device).float()
    valid = target.get("valid")
    mask = torch.isfinite(gt) & sample_mask(target.get("has_gt"), gt)
    if positive:
        mask = mask & (gt > 0)
    if valid is not None:
        mask = mask & as_map(valid).to(device=gt.device, dtype=torch.bool)
    return torch.where(mask, gt, torch.ones_like(gt)), mask


def teacher_mask(target: dict[str, Any], pred: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(teacher map float32 with unusable pixels set to 1, pixel mask, teacher space)."""
    fix = "the cache has no teacher maps (teacher 'none'?); drop distillation losses from the weights"
    teacher = as_map(require(target, "teacher", loss, fix)).to(pred.device).float()
    space = require(target, "teacher_space", loss, fix)
    if space not in ("disparity", "depth"):
        raise KdcacheError(f"teacher_space must be 'disparity' or 'depth', got {space!r}: check the cache manifest.")
    mask = torch.isfinite(teacher) & sample_mask(target.get("teacher_ok"), teacher)
    if space == "depth":
        mask = mask & (teacher > 0)
    return torch.where(mask, teacher, torch.ones_like(teacher)), mask, space


def masked_mean_per_image(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-image masked mean (B,), per-image 'has any pixel' (B,) bool)."""
    weight = mask.to(values.dtype)
    count = weight.flatten(1).sum(1)
    total = torch.where(mask, values, torch.zeros_like(values)).flatten(1).sum(1)
    return total / count.clamp_min(1.0), count > 0


def mean_over_images(per_image: torch.Tensor, present: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """Mean over images that have pixels; an exact, graph-connected zero when none has."""
    weight = present.to(per_image.dtype)
    return (per_image * weight).sum() / weight.sum().clamp_min(1.0) + zero_like_graph(anchor)


def zero_like_graph(anchor: torch.Tensor) -> torch.Tensor:
    """0 that depends on `anchor`, so backward reaches everything `anchor` depends on."""
    return torch.nan_to_num(anchor).sum() * 0.0

"""Batch augmentation applied identically to every spatial field of a cached sample.

One affine map per sample (random crop of side `s` at a random centre, zoomed back to the full size,
optionally mirrored) is applied with `grid_sample` to the image, the teacher map, GT, the valid mask and
every pooled feature map. Normalised coordinates make the same map correct at any resolution, so a
(C, h, w) feature grid is cropped/flipped exactly like the (H, W) image it was pooled from; what it cannot
give is the teacher's feature *of the crop* (the cache holds full-image features, as ReLabel does).

Interpolation: bilinear for the image, teacher map and features; nearest for GT and the valid mask, so
invalid pixels never bleed into valid ones. Zooming by 1/s makes the scene look as if seen through a
lens of focal f/s, so metric maps ("depth" space) are multiplied by s (Eigen et al. 2014 divide depths by
the zoom); relative disparity maps are left as they are (they carry no scale).
Colour jitter (brightness, contrast, saturation) touches the image only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kdcache.train.train_config import AugmentConfig

DRAWS_PER_SAMPLE = 7  # scale, centre x, centre y, flip, brightness, contrast, saturation


def sample_params(rng: np.random.Generator, batch: int, cfg: AugmentConfig) -> dict[str, np.ndarray]:
    """Per-sample random parameters; always the same number of draws so streams never shift."""
    u = rng.random((batch, DRAWS_PER_SAMPLE))
    lo, hi = cfg.scale
    scale = lo + (hi - lo) * u[:, 0] if cfg.enabled else np.ones(batch)
    span = 1.0 - scale  # the crop centre may move this far from the image centre (normalised units)
    jitter = cfg.jitter if cfg.enabled else 0.0
    return {
        "scale": scale,
        "cx": span * (2 * u[:, 1] - 1),
        "cy": span * (2 * u[:, 2] - 1),
        "flip": (u[:, 3] < 0.5) & cfg.flip & cfg.enabled,
        "brightness": 1 + jitter * (2 * u[:, 4] - 1),
        "contrast": 1 + jitter * (2 * u[:, 5] - 1),
        "saturation": 1 + jitter * (2 * u[:, 6] - 1),
    }


def affine_thetas(params: dict[str, np.ndarray]) -> torch.Tensor:
    """(B, 2, 3) output->input maps in `affine_grid`'s normalised coordinates."""
    scale = params["scale"]
    theta = np.zeros((len(scale), 2, 3), dtype=np.float32)
    theta[:, 0, 0] = np.where(params["flip"], -scale, scale)
    theta[:, 0, 2] = params["cx"]
    theta[:, 1, 1] = scale
    theta[:, 1, 2] = params["cy"]
    return torch.from_numpy(theta)


def warp(maps: torch.Tensor, theta: torch.Tensor, mode: str) -> torch.Tensor:
    """Resample (B, C, h, w) maps through `theta` at their own resolution."""
    grid = F.affine_grid(theta, list(maps.shape), align_corners=False)
    return F.grid_sample(maps, grid, mode=mode, padding_mode="border", align_corners=False)


def colour_jitter(image: torch.Tensor, params: dict[str, np.ndarray]) -> torch.Tensor:
    """Brightness, contrast, saturation on a (B, 3, H, W) image in [0, 1]."""
    shape = (-1, 1, 1, 1)
    bright = torch.from_numpy(params["brightness"]).float().view(shape)
    contrast = torch.from_numpy(params["contrast"]).float().view(shape)
    saturation = torch.from_numpy(params["saturation"]).float().view(shape)
    image = image * bright
    mean = image.mean(dim=(1, 2, 3), keepdim=True)
    image = (image - mean) * contrast + mean
    gray = (0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3])
    image = (image - gray) * saturation + gray
    return image.clamp_(0.0, 1.0)


def augment_batch(batch: dict, params: dict[str, np.ndarray], metric: dict[str, torch.Tensor]) -> dict:
    """Apply `params` to a collated batch in place and return it.

    `batch` holds (B, C, H, W) float tensors `image`, `teacher`, `gt`, bool `valid` and `features/<layer>`
    (any subset); `metric[field]` is a (B,) bool saying which rows of that map are metric depth.
    """
    theta = affine_thetas(params)
    moved = torch.from_numpy((params["scale"] < 1.0) | params["flip"])
    if moved.any():
        rows = moved.nonzero().squeeze(1)
        sub = theta[rows]
        for key, value in batch.items():
            if key == "image" or key == "teacher" or key.startswith("features/"):
                value[rows] = warp(value[rows], sub, "bilinear")
            elif key == "gt":
                value[rows] = warp(value[rows], sub, "nearest")
            elif key == "valid":
                value[rows] = warp(value[rows].float(), sub, "nearest") > 0.5
    scale = torch.from_numpy(params["scale"]).float().view(-1, 1, 1, 1)
    for key, is_metric in metric.items():
        if key in batch:
            factor = torch.where(is_metric.view(-1, 1, 1, 1), scale, torch.ones_like(scale))
            batch[key] = batch[key] * factor
    if "image" in batch:
        batch["image"] = colour_jitter(batch["image"], params)
    return batch

"""Bringing a source sample to the cache resolution: centre-crop to the target aspect, then resize.

The image is resized with PIL's antialiased bilinear filter; ground truth (depth and valid mask) with
nearest neighbour on the same crop, so invalid pixels never blend into valid ones and depth values
are never averaged across edges. The stored uint8 image is exactly what the teacher sees.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def aspect_crop_box(height: int, width: int, target: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width): the largest centred window with the target aspect ratio."""
    target_h, target_w = target
    if width * target_h > height * target_w:  # too wide: crop columns
        crop_h, crop_w = height, max(1, round(height * target_w / target_h))
    else:  # too tall: crop rows
        crop_h, crop_w = max(1, round(width * target_h / target_w)), width
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def resize_image(image: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 -> (H, W, 3) uint8, centre-cropped to the target aspect first."""
    top, left, crop_h, crop_w = aspect_crop_box(image.shape[0], image.shape[1], target)
    window = np.ascontiguousarray(image[top:top + crop_h, left:left + crop_w])
    if window.shape[:2] == tuple(target):
        return window
    resized = Image.fromarray(window).resize((target[1], target[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def nearest_indices(source: int, target: int) -> np.ndarray:
    """Pixel-centre nearest neighbour: target pixel i samples source pixel floor((i + 0.5) * source / target)."""
    return np.minimum(((np.arange(target) + 0.5) * source / target).astype(np.int64), source - 1)


def resize_nearest(values: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """(h, w) map of any dtype -> (H, W), same centre crop as the image, nearest neighbour."""
    top, left, crop_h, crop_w = aspect_crop_box(values.shape[0], values.shape[1], target)
    window = values[top:top + crop_h, left:left + crop_w]
    rows, cols = nearest_indices(crop_h, target[0]), nearest_indices(crop_w, target[1])
    return np.ascontiguousarray(window[rows[:, None], cols[None, :]])

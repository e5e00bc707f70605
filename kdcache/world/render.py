"""Scene -> (RGB image, z-depth): ray cast, then per visible surface: frame, texture, light; then
expose, add sensor noise and gamma-encode.

Shading is deferred: one stable sort of the surface-id map groups the pixels of each surface, and each
group is shaded once on contiguous arrays, so pixels hidden behind objects cost nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kdcache.world.camera import nyu_intrinsics
from kdcache.world.draws import Draws
from kdcache.world.raycast import object_frame, room_frame
from kdcache.world.lighting import dot, irradiance
from kdcache.world.raycast import cast
from kdcache.world.shapes import ROOM_SURFACES
from kdcache.world.materials import PATTERNS, material_pattern

F32 = np.float32
# Mean linear intensity the auto-exposure aims for (~ mid-grey after gamma).
_EXPOSURE_TARGET = 0.24


def render(scene, height: int, width: int, rng: Draws) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8 and z-depth (H, W) float32 in metres; `rng` draws exposure jitter and noise."""
    hits = cast(scene, height, width)
    linear = _shade(scene, hits, height, width)
    image = _expose(linear.reshape(3, height, width), scene.tint, rng)
    return image, hits.t


def _shade(scene, hits, height: int, width: int) -> np.ndarray:
    """Linear-light colour, planar (3, H*W) float32.

    Pixels are permuted once so that each surface's pixels are contiguous: every per-surface array is
    then a view (no per-group gathers), and one scatter per channel puts the colours back in place.
    """
    flat = height * width
    origin = scene.pose.position
    order, bounds = _surface_order(hits.surface.reshape(flat), len(ROOM_SURFACES) + len(scene.objects))
    t = hits.t.reshape(flat)[order]
    points_all = tuple(F32(o) + t * d.reshape(flat)[order] for o, d in zip(origin, hits.rays))
    pixel_angle = F32(1.0 / nyu_intrinsics(height, width).fx)
    materials = list(scene.room.materials) + [obj.material for obj in scene.objects]
    shaded = np.empty((3, flat), np.float32)
    for surface, mat in enumerate(materials):
        group = slice(int(bounds[surface]), int(bounds[surface + 1]))
        if group.start == group.stop:
            continue
        depth = t[group]
        points = tuple(p[group] for p in points_all)
        if surface < len(ROOM_SURFACES):
            normal, u, v = room_frame(surface, points)
        else:
            normal, u, v = object_frame(scene.objects[surface - len(ROOM_SURFACES)], points)
        if PATTERNS.info(mat.pattern).get("filtered"):
            footprint = _footprint(depth, points, origin, normal, pixel_angle)
        else:  # unfiltered patterns only fade their grain with distance: the angle does not matter
            footprint = depth * pixel_angle
        mix, shade = material_pattern(mat, u, v, footprint)
        light = irradiance(scene, surface, points, normal)
        if shade is not None:
            light *= shade
        for plane, a, b in zip(shaded, mat.color_a, mat.color_b):
            out = plane[group]
            np.multiply(mix, F32(b - a), out=out)
            out += F32(a)
            out *= light
    color = np.empty((3, flat), np.float32)
    for plane, values in zip(color, shaded):
        plane[order] = values
    return color


def _surface_order(surface: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel order grouping equal surface ids (a stable one-pass radix sort) and each id's [start, stop)."""
    order = np.argsort(surface.astype(np.uint8), kind="stable")
    bounds = np.zeros(count + 1, np.int64)
    np.cumsum(np.bincount(surface, minlength=count), out=bounds[1:])
    return order, bounds


def _footprint(depth, points, origin, normal, pixel_angle) -> np.ndarray:
    """Approximate size (m) of a pixel on the surface it sees: grows with depth and grazing angle."""
    ray = tuple(p - F32(o) for p, o in zip(points, origin))
    facing = np.abs(dot(ray, normal))
    length = np.sqrt(ray[0] * ray[0] + ray[1] * ray[1] + ray[2] * ray[2])
    cosine = np.maximum(facing / length, F32(0.15))
    return depth * pixel_angle / cosine


@lru_cache(maxsize=4)
def _noise_field(height: int, width: int) -> np.ndarray:
    """Unit Gaussian noise (3, 2H, 2W), drawn once per size; each image reads a random window of it.

    Drawing 230k fresh normals costs ~3 ms, a third of the time budget of a whole image.
    """
    field = np.random.default_rng(7).standard_normal((3, 2 * height, 2 * width), dtype=np.float32)
    field.flags.writeable = False
    return field


def _expose(color: np.ndarray, tint, rng: Draws) -> np.ndarray:
    """Auto-exposure (jittered), white balance, sensor noise, gamma 2: (3, H, W) linear -> (H, W, 3) uint8.

    Gain, white balance and the 255 of 8 bits fold into one multiply before the sqrt; the abs only
    catches float rounding (a filtered pattern's mix can overshoot [0, 1] by ~1e-7).
    """
    _, height, width = color.shape
    mean = float(color[:, ::3, ::3].mean()) + 1e-6
    gain = float(np.clip(_EXPOSURE_TARGET / mean, 0.3, 8.0) * rng.uniform(0.8, 1.2))
    sigma = F32(rng.uniform(1.0, 3.5))  # in 8-bit levels, added after gamma like read noise
    oy, ox = int(rng.integers(height)), int(rng.integers(width))
    noise = _noise_field(height, width)[:, oy:oy + height, ox:ox + width]
    color *= (np.asarray(tint, np.float32) * F32(gain * 255.0 * 255.0))[:, None, None]
    np.abs(color, out=color)  # cheaper than np.maximum(color, 0), same effect on rounding-level negatives
    np.sqrt(color, out=color)
    color += noise * sigma
    np.clip(color, 0.0, 255.0, out=color)
    out = np.empty((height, width, 3), np.uint8)
    for ch in range(3):  # strided per-channel stores beat one transposing store ~2.5x
        out[..., ch] = color[ch]
    return out

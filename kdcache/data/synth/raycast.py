"""Vectorised ray casting: every pixel's first hit (z-depth) and which surface it belongs to.

Rays are cast for the whole image at once against the room (a box seen from inside), then each
object is intersected only inside its projected screen rectangle, so small or distant objects cost
little. Only t and the surface id are computed here; normals and texture coordinates are derived
later from the hit points of the pixels that actually see a surface (`frames.py`), so hidden
surfaces cost nothing beyond their depth test. Ray directions are scaled so that t equals z-depth.

Speed notes (numpy, one core): selections are written as arithmetic (`b + mask * (a - b)`) or
`np.minimum`, which are ~10x cheaper than `np.where` on 76,800 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kdcache.data.synth.camera import nyu_intrinsics, ray_norm2, screen_rects, world_rays
from kdcache.data.synth.shapes import ROOM_SURFACES, Box, Cylinder, Sphere

F32 = np.float32
INF = F32(np.inf)


@dataclass
class Hits:
    """Per-pixel results, (H, W): z-depth `t`, `surface` id (room surfaces first, then objects), rays."""

    t: np.ndarray
    surface: np.ndarray
    rays: tuple[np.ndarray, np.ndarray, np.ndarray]


def cast(scene, height: int, width: int) -> Hits:
    rays = world_rays(scene.pose, height, width)
    hits = _cast_room(scene.room.size, scene.pose.position, rays)
    k = nyu_intrinsics(height, width)
    norm2 = ray_norm2(height, width)
    if not scene.objects:
        return hits
    corners = np.stack([obj.corners() for obj in scene.objects])
    for index, (obj, rect) in enumerate(zip(scene.objects, screen_rects(corners, scene.pose, k, height, width))):
        if rect is None:
            continue
        block = np.s_[rect[0]:rect[1], rect[2]:rect[3]]
        t = object_t(obj, scene.pose.position, tuple(d[block] for d in rays), norm2[block])
        nearer = t < hits.t[block]
        if nearer.any():
            np.minimum(hits.t[block], t, out=hits.t[block])
            hits.surface[block][nearer] = len(ROOM_SURFACES) + index
    return hits


def _cast_room(size, origin, rays) -> Hits:
    """The room seen from inside: per axis, the wall the ray points at; the nearest of the three wins."""
    dx, dy, dz = rays
    times, ahead = [], []
    for d, extent, o in zip(rays, size, origin):
        # Distance to the wall ahead is positive as the camera is inside the room; d == 0 gives inf.
        positive = d > 0
        numerator = F32(o) + positive * F32(extent - 2 * o)  # extent - o ahead, o behind
        with np.errstate(divide="ignore"):
            times.append(numerator / np.abs(d))
        ahead.append(positive)
    tx, ty, tz = times
    ax, ay, az = (a.astype(np.int16) for a in ahead)
    # Surface ids follow ROOM_SURFACES: floor 0, ceiling 1, wall_x0 2, wall_x1 3, wall_z0 4, wall_z1 5.
    x_first = tx <= tz
    wall = (az + 4) + x_first * (ax - az - 2)  # 2 + ax where an x wall is nearer, else 4 + az
    t_walls = np.minimum(tx, tz)
    plane = ty < t_walls
    surface = (wall + plane * (ay - wall)).astype(np.int16)
    return Hits(np.minimum(ty, t_walls), surface, rays)


def object_t(obj, origin, rays, norm2) -> np.ndarray:
    """z-depth of the first hit of each ray with `obj` (inf where it misses)."""
    if isinstance(obj, Box):
        return _box_t(obj, origin, rays)
    if isinstance(obj, Sphere):
        return _sphere_t(obj, origin, rays, norm2)
    if isinstance(obj, Cylinder):
        return _cylinder_t(obj, origin, rays)
    raise TypeError(f"cannot ray-cast {type(obj).__name__}")


def _box_t(box: Box, origin, rays) -> np.ndarray:
    """Slab test in the box's own frame (turned by yaw about y)."""
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    ox, oy, oz = (o - b for o, b in zip(origin, box.center))
    # world = (c*lx + s*lz, ly, -s*lx + c*lz)  <=>  lx = c*wx - s*wz, lz = s*wx + c*wz
    o_local = (c * ox - s * oz, oy, s * ox + c * oz)
    dx, dy, dz = rays
    d_local = (F32(c) * dx - F32(s) * dz, dy, F32(s) * dx + F32(c) * dz)
    t_near = t_far = None
    with np.errstate(divide="ignore", invalid="ignore"):
        for o, d, h in zip(o_local, d_local, box.half):
            inv = F32(1.0) / d
            ta, tb = F32(-h - o) * inv, F32(h - o) * inv
            t_in, t_out = np.minimum(ta, tb), np.maximum(ta, tb)
            t_near = t_in if t_near is None else np.maximum(t_near, t_in)
            t_far = t_out if t_far is None else np.minimum(t_far, t_out)
        miss = ~((t_near <= t_far) & (t_near > 0))
    t_near[miss] = INF
    return t_near


def _sphere_t(sphere: Sphere, origin, rays, norm2) -> np.ndarray:
    oc = [o - c for o, c in zip(origin, sphere.center)]
    dx, dy, dz = rays
    b = F32(oc[0]) * dx + F32(oc[1]) * dy + F32(oc[2]) * dz
    cc = F32(sum(x * x for x in oc) - sphere.radius**2)
    disc = b * b - norm2 * cc
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / norm2
        t[~((disc > 0) & (t > 0))] = INF
    return t


def _cylinder_t(cyl: Cylinder, origin, rays) -> np.ndarray:
    """Side (quadratic in x-z) plus the cap facing the camera when the camera is above or below it."""
    ox, oy, oz = origin[0] - cyl.x, origin[1], origin[2] - cyl.z
    dx, dy, dz = rays
    r2 = cyl.radius**2
    a = dx * dx + dz * dz
    b = F32(ox) * dx + F32(oz) * dz
    disc = b * b - a * F32(ox * ox + oz * oz - r2)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(disc)) / a
        y = F32(oy) + t * dy
        t[~((disc > 0) & (t > 0) & (y >= cyl.y0) & (y <= cyl.y1))] = INF
        cap_y = cyl.y1 if oy > cyl.y1 else (cyl.y0 if oy < cyl.y0 else None)
        if cap_y is not None:
            t_cap = F32(cap_y - oy) / dy
            cx, cz = F32(ox) + t_cap * dx, F32(oz) + t_cap * dz
            on_cap = (t_cap > 0) & (cx * cx + cz * cz <= F32(r2))
            np.minimum(t, np.where(on_cap, t_cap, INF), out=t)
    return t

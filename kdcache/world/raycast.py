"""Vectorised ray casting: every pixel's first hit (z-depth) and which surface it belongs to, then the surface
frames of the pixels that see each surface.

Rays are cast for the whole image at once against the room (a box seen from inside), then each
object is intersected only inside its projected screen rectangle, so small or distant objects cost
little. Only t and the surface id are computed by `cast`; normals and texture coordinates (`room_frame`,
`object_frame`) are derived afterwards from the hit points of the pixels that actually see a surface, which
costs O(visible pixels) instead of O(every object's screen rectangle), so hidden surfaces cost nothing beyond
their depth test. Ray directions are scaled so that t equals z-depth.

Speed notes (numpy, one core): selections are written as arithmetic (`b + mask * (a - b)`) or
`np.minimum`, which are ~10x cheaper than `np.where` on 76,800 pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kdcache.world.camera import nyu_intrinsics, ray_norm2, screen_rects, world_rays
from kdcache.world.shapes import ROOM_SURFACES, Box, Cylinder, Sphere

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


# ---------------- surface frames from hit points: the unit normal and 2D texture coordinates (metres) of each pixel


# Inward normal and (u, v) axes of each room surface, indexed like ROOM_SURFACES.
_ROOM = {
    0: ((0.0, 1.0, 0.0), (0, 2)),  # floor: x, z
    1: ((0.0, -1.0, 0.0), (0, 2)),  # ceiling
    2: ((1.0, 0.0, 0.0), (2, 1)),  # wall x = 0: z, y
    3: ((-1.0, 0.0, 0.0), (2, 1)),
    4: ((0.0, 0.0, 1.0), (0, 1)),  # wall z = 0: x, y
    5: ((0.0, 0.0, -1.0), (0, 1)),
}


def room_frame(surface: int, points):
    """Constant normal (3 floats) and the two in-plane coordinates."""
    normal, (iu, iv) = _ROOM[surface]
    return normal, points[iu], points[iv]


def object_frame(obj, points):
    """Per-pixel normal (3 arrays) and (u, v) for hit `points` (3 arrays) on `obj`."""
    if isinstance(obj, Box):
        return _box_frame(obj, points)
    if isinstance(obj, Sphere):
        return _sphere_frame(obj, points)
    if isinstance(obj, Cylinder):
        return _cylinder_frame(obj, points)
    raise TypeError(f"no surface frame for {type(obj).__name__}")


def _box_frame(box: Box, points):
    c, s = F32(math.cos(box.yaw)), F32(math.sin(box.yaw))
    px, py, pz = (p - F32(b) for p, b in zip(points, box.center))
    lx, lz = c * px - s * pz, s * px + c * pz
    hx, hy, hz = (F32(1.0 / h) for h in box.half)
    # The face hit is the one the point lies on: the largest |coordinate| / half size (== 1 there).
    rx, ry, rz = np.abs(lx) * hx, np.abs(py) * hy, np.abs(lz) * hz
    face_x = (rx >= ry) & (rx >= rz)
    face_y = ~face_x & (ry >= rz)
    face_z = ~(face_x | face_y)
    nlx = face_x * ((lx > 0) * F32(2.0) - F32(1.0))
    nly = face_y * ((py > 0) * F32(2.0) - F32(1.0))
    nlz = face_z * ((lz > 0) * F32(2.0) - F32(1.0))
    normal = (c * nlx + s * nlz, nly, c * nlz - s * nlx)
    u = lx + face_x * (lz - lx)  # x faces: (z, y); y faces: (x, z); z faces: (x, y)
    v = py + face_y * (lz - py)
    return normal, u, v


def _sphere_frame(sphere: Sphere, points):
    inv_r = F32(1.0 / sphere.radius)
    normal = tuple((p - F32(c)) * inv_r for p, c in zip(points, sphere.center))
    u = np.arctan2(normal[2], normal[0]) * F32(sphere.radius)
    v = normal[1] * F32(sphere.radius * 1.5)
    return normal, u, v


def _cylinder_frame(cyl: Cylinder, points):
    px, py, pz = points[0] - F32(cyl.x), points[1], points[2] - F32(cyl.z)
    r2 = F32(cyl.radius**2)
    # Side points sit at radius r (to float precision); cap points are inside it.
    cap = (px * px + pz * pz) < r2 * F32(0.998)
    side = ~cap
    inv_r = F32(1.0 / cyl.radius)
    up = (py > F32(0.5 * (cyl.y0 + cyl.y1))) * F32(2.0) - F32(1.0)
    normal = (side * px * inv_r, cap * up, side * pz * inv_r)
    around = np.arctan2(pz, px) * F32(cyl.radius)
    u = around + cap * (px - around)
    v = py + cap * (pz - py)
    return normal, u, v

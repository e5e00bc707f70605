"""Surface frames from hit points: the unit normal and 2D texture coordinates (metres) of each pixel.

Deriving these after ray casting, only for the pixels that see a surface, costs O(visible pixels)
instead of O(every object's screen rectangle). Inputs are flat arrays of one surface's hit points.
"""

from __future__ import annotations

import math

import numpy as np

from kdcache.data.synth.shapes import Box, Cylinder, Sphere

F32 = np.float32

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

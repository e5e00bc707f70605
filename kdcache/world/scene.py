"""Sampling one random room: its size, furniture-like objects, lights and the camera pose.

Everything is drawn from one `numpy.random.Generator`, so a scene is a pure function of its seed.
Two guarantees keep every depth inside the world's range (NYU's 0.5-10 m indoors):
- the farthest room corner is at most `max_depth` from the camera (z-depth <= Euclidean distance);
- walls and objects keep a clearance from the camera; a point at distance d off a plane is seen at
  z-depth >= d * cos(half diagonal field of view) ~= 0.79 d, so a clearance of 0.7 m gives >= 0.55 m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kdcache.world import materials
from kdcache.world.camera import Pose
from kdcache.world.draws import Draws
from kdcache.world.shapes import Box, Cylinder, Light, Room, Sphere


@dataclass(frozen=True)
class World:
    """Scene statistics of a family of splits. `scale` stretches rooms and furniture (not the camera)."""

    name: str
    scale_range: tuple[float, float] = (1.0, 1.0)
    max_depth: float = 9.8
    objects: tuple[int, int] = (3, 9)
    max_primitives: int = 18


INDOOR = World("indoor")
# Halls 3-4x larger than rooms with building-sized blocks: depth reaches 30-40 m, an outdoor-like range.
FAR = World("far", scale_range=(3.0, 4.0))
# Halls 6-8x larger (depth to 60-80 m): a sharper scene-scale control than FAR, whose halls still carry most of
# what KD transfers to indoor rooms once the teacher is good (docs/results.md, scale `full`).
VAST = World("vast", scale_range=(6.0, 8.0))
# Halls 6-8x larger (depth to 60-80 m): a sharper scene-scale control than FAR, whose halls still carry most of
# what KD transfers to indoor rooms once the teacher is good (docs/results.md, scale `full`).
VAST = World("vast", scale_range=(6.0, 8.0))

_KINDS = ("box", "box_wall", "table", "cylinder", "sphere")
_KIND_WEIGHTS = (0.25, 0.25, 0.15, 0.17, 0.18)

WALL_CLEARANCE = 0.7
OBJECT_CLEARANCE = 0.9


@dataclass(frozen=True)
class Scene:
    room: Room
    objects: tuple
    lights: tuple[Light, ...]
    pose: Pose
    ambient: float
    tint: tuple[float, float, float]  # white balance of the illuminant (linear RGB gains)
    scale: float


def sample_scene(rng: Draws | np.random.Generator, world: World = INDOOR) -> Scene:
    """A random scene of `world`; a pure function of the generator's state."""
    if not isinstance(rng, Draws):
        rng = Draws(rng)
    scale = float(rng.uniform(*world.scale_range))
    size, pose = _room_and_pose(rng, world, scale)
    room = Room(size, _room_materials(rng, scale))
    objects = _furnish(rng, world, size, pose, scale)
    warmth = float(rng.uniform(-0.06, 0.12))
    tint = (1.0 + warmth, 1.0, 1.0 - warmth)
    return Scene(room, tuple(objects), _lights(rng, size, scale), pose, float(rng.uniform(0.15, 0.3)), tint, scale)


def _room_and_pose(rng: Draws, world: World, scale: float):
    width = rng.uniform(3.0, 7.5) * scale
    depth = rng.uniform(3.5, 9.5) * scale
    height = rng.uniform(2.4, 3.2) * (1.0 if scale == 1.0 else scale * 0.8)
    cam_h = rng.uniform(1.1, 1.7)
    margin = WALL_CLEARANCE * scale
    cam_x_frac, cam_z_frac = rng.uniform(0.25, 0.75), rng.uniform(0.0, 1.0)
    yaw = min(max(rng.normal(0.0, math.radians(18)), -math.radians(40)), math.radians(40))
    pitch = float(rng.uniform(math.radians(-24), math.radians(6)))
    roll = min(max(rng.normal(0.0, math.radians(1.5)), -math.radians(4)), math.radians(4))
    limit = world.max_depth * scale
    while True:
        # Camera near the back wall (z = 0), looking into the room like a person entering it.
        cam_x = margin + cam_x_frac * (width - 2 * margin)
        cam_z = margin + cam_z_frac * min(0.8 * scale, max(depth / 3 - margin, 0.0))
        dx = max(cam_x, width - cam_x)
        dy = max(cam_h, height - cam_h)
        dz = max(cam_z, depth - cam_z)
        if math.sqrt(dx * dx + dy * dy + dz * dz) <= limit:
            break
        width, depth = width * 0.95, depth * 0.95
    pose = Pose((float(cam_x), float(cam_h), float(cam_z)), yaw, pitch, roll)
    return (float(width), float(height), float(depth)), pose


def _room_materials(rng: Draws, scale: float):
    wall = materials.wall_material(rng)
    walls = [wall] * 4
    if rng.random() < 0.3:  # an accent wall
        walls[int(rng.integers(4))] = materials.wall_material(rng)
    return (materials.floor_material(rng, scale), materials.ceiling_material(rng), *walls)


def _furnish(rng: Draws, world: World, size, pose: Pose, scale: float) -> list:
    """Furniture-like objects on the floor, a few things on top of them, pictures on the walls."""
    placed: list = []
    footprints: list[tuple[float, float, float]] = []  # (x, z, radius) of everything on the floor
    n_objects = int(rng.integers(world.objects[0], world.objects[1] + 1))
    kinds = [materials.pick(rng, _KINDS, _KIND_WEIGHTS) for _ in range(n_objects)]
    for kind in kinds:
        budget = world.max_primitives - len(placed)
        if budget < (5 if kind == "table" else 1):
            continue
        placed.extend(_place(rng, kind, size, pose, scale, footprints))
    placed.extend(_on_top(rng, placed, scale, world.max_primitives - len(placed)))
    placed.extend(_pictures(rng, size, pose, scale, world.max_primitives - len(placed)))
    return placed


def _place(rng, kind, size, pose, scale, footprints):
    """Try a few random spots for one object (or object group); [] if the room has no room for it."""
    width, _, depth = size
    material = materials.object_material(rng, scale)
    for _ in range(12):
        if kind == "box_wall":
            made = [_wall_box(rng, width, depth, scale, material)]
            x, z, radius = made[0].center[0], made[0].center[2], made[0].footprint_radius
        else:
            parts = _make(rng, kind, scale, material)
            radius = max(math.hypot(p.center[0], p.center[2]) + p.footprint_radius for p in parts)
            if width <= 2 * radius or depth <= 2 * radius:
                continue
            x, z = _spot(rng, pose, radius, width, depth)
            made = [_shift(p, x, z) for p in parts]
        if _clear(x, z, radius, pose, scale, footprints):
            footprints.append((x, z, radius))
            return made
    return []


def _spot(rng, pose: Pose, radius: float, width: float, depth: float) -> tuple[float, float]:
    """A floor position keeping `radius` off the walls; mostly inside the camera's view, as a
    photographer frames a room's contents (uniform positions leave many views empty)."""
    lo_x, hi_x, lo_z, hi_z = radius, width - radius, radius, depth - radius
    if rng.random() < 0.75:
        cam_x, _, cam_z = pose.position
        heading = pose.yaw + rng.uniform(-0.45, 0.45)  # about the horizontal half field of view
        distance = rng.uniform(1.0, max(1.0, depth - cam_z))
        x, z = cam_x + distance * math.sin(heading), cam_z + distance * math.cos(heading)
        if lo_x <= x <= hi_x and lo_z <= z <= hi_z:
            return float(x), float(z)
    return float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_z, hi_z))


def _shift(obj, x: float, z: float):
    """`obj` moved by (x, z) on the floor (built directly: dataclasses.replace is slow in a hot loop)."""
    if isinstance(obj, Cylinder):
        return Cylinder(obj.x + x, obj.z + z, obj.y0, obj.y1, obj.radius, obj.material)
    cx, cy, cz = obj.center
    if isinstance(obj, Sphere):
        return Sphere((cx + x, cy, cz + z), obj.radius, obj.material)
    return Box((cx + x, cy, cz + z), obj.half, obj.yaw, obj.material)


def _clear(x, z, radius, pose, scale, footprints) -> bool:
    cam_x, _, cam_z = pose.position
    if math.hypot(x - cam_x, z - cam_z) < radius + OBJECT_CLEARANCE * scale:
        return False
    return all(math.hypot(x - fx, z - fz) > 0.85 * (radius + fr) for fx, fz, fr in footprints)


def _make(rng, kind, scale, mat):
    """One free-standing object (or a table's parts) centred on x = z = 0."""
    if kind == "box":
        hx, hy, hz = rng.uniform(0.2, 1.0) * scale, rng.uniform(0.15, 1.0) * scale, rng.uniform(0.2, 0.6) * scale
        yaw = materials.pick(rng, (0.0, math.pi / 2)) if rng.random() < 0.7 else float(rng.uniform(0, math.pi))
        return [Box((0.0, hy, 0.0), (hx, hy, hz), yaw, mat)]
    if kind == "table":
        return _table(rng, scale, mat)
    if kind == "cylinder":
        r = rng.uniform(0.1, 0.4) * scale
        return [Cylinder(0.0, 0.0, 0.0, rng.uniform(0.3, 1.6) * scale, r, mat)]
    r = rng.uniform(0.12, 0.45) * scale
    return [Sphere((0.0, r, 0.0), r, mat)]


def _wall_box(rng, width, depth, scale, material):
    """Cabinets and shelves: tall-ish boxes standing with their back to a wall."""
    hx, hy, hz = rng.uniform(0.3, 1.1) * scale, rng.uniform(0.3, 1.1) * scale, rng.uniform(0.15, 0.35) * scale
    yaw, x, z = _against_wall(rng, width, depth, hx, hz)
    return Box((float(x), hy, float(z)), (hx, hy, hz), yaw, material)


def _against_wall(rng, width, depth, hx, hz):
    """A yaw and centre that put a box's back (local -z face) flush with one of the side/far walls."""
    wall = int(rng.integers(3))
    if wall == 0:  # far wall, facing the camera
        return math.pi, rng.uniform(hx, max(hx, width - hx)), depth - hz - 0.01
    if wall == 1:  # left wall x = 0, facing +x
        return math.pi / 2, hz + 0.01, rng.uniform(hx, max(hx, depth - hx))
    return -math.pi / 2, width - hz - 0.01, rng.uniform(hx, max(hx, depth - hx))


def _table(rng, scale, mat):
    """A table top on four legs (five boxes), centred on x = z = 0."""
    hx, hz = rng.uniform(0.35, 0.9) * scale, rng.uniform(0.3, 0.6) * scale
    height, top, leg = rng.uniform(0.45, 0.8) * scale, 0.025 * scale, 0.03 * scale
    yaw = materials.pick(rng, (0.0, math.pi / 2)) if rng.random() < 0.6 else float(rng.uniform(0, math.pi))
    c, s = math.cos(yaw), math.sin(yaw)
    parts = [Box((0.0, height - top, 0.0), (hx, top, hz), yaw, mat)]
    leg_half_height = (height - 2 * top) / 2
    for lx in (-hx + 2 * leg, hx - 2 * leg):
        for lz in (-hz + 2 * leg, hz - 2 * leg):
            centre = (c * lx + s * lz, leg_half_height, -s * lx + c * lz)
            parts.append(Box(centre, (leg, leg_half_height, leg), yaw, mat))
    return parts


def _on_top(rng, placed, scale, budget):
    """Balls and jars standing on boxes and tables (a classic occlusion and support cue)."""
    extra = []
    supports = [o for o in placed if isinstance(o, Box) and o.half[1] * 2 < 1.6 * scale and o.half[0] > 0.15 * scale]
    for support in supports:
        if len(extra) >= budget or rng.random() > 0.4:
            continue
        mat = materials.object_material(rng, scale)
        x, top, z = support.center[0], support.top, support.center[2]
        shift = min(support.half[0], support.half[2]) * 0.4
        x, z = x + rng.uniform(-shift, shift), z + rng.uniform(-shift, shift)
        if rng.random() < 0.5:
            r = rng.uniform(0.06, 0.18) * scale
            extra.append(Sphere((x, top + r, z), r, mat))
        else:
            r = rng.uniform(0.05, 0.15) * scale
            extra.append(Cylinder(x, z, top, top + rng.uniform(0.1, 0.4) * scale, r, mat))
    return extra


def _pictures(rng, size, pose, scale, budget):
    """Thin framed pictures on the side and far walls (never the wall behind the camera)."""
    width, height, depth = size
    pictures = []
    for _ in range(min(int(rng.integers(0, 4)), budget)):
        hw, hh, thick = rng.uniform(0.2, 0.6) * scale, rng.uniform(0.15, 0.45) * scale, 0.02
        y = float(np.clip(rng.uniform(1.2, 1.9) * scale, hh + 0.3, height - hh - 0.1))
        yaw, x, z = _against_wall(rng, width, depth, hw, thick)
        pictures.append(Box((x, y, z), (hw, hh, thick), yaw, materials.picture_material(rng)))
    return pictures


def _lights(rng: Draws, size, scale: float) -> tuple[Light, ...]:
    """One or two ceiling lamps; the first is the main one."""
    width, height, depth = size
    lights = []
    for i in range(int(rng.integers(1, 3))):
        power = rng.uniform(1.0, 1.6) if i == 0 else rng.uniform(0.3, 0.7)
        pos = (rng.uniform(0.2, 0.8) * width, height - 0.25 * scale, rng.uniform(0.3, 0.9) * depth)
        lights.append(Light(tuple(float(p) for p in pos), float(power), 3.0 * scale))
    return tuple(lights)

"""The primitives a synthetic room is made of, as plain frozen records (world frame, metres)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kdcache.world.materials import Material


# The 8 sign combinations of a box's corners, (8, 3).
_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)


@dataclass(frozen=True)
class Box:
    """A box resting anywhere, turned by `yaw` about the vertical axis; `half` are its half sizes."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float
    material: Material

    def corners(self) -> np.ndarray:
        local = _CORNER_SIGNS * np.asarray(self.half)
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        world_x = c * local[:, 0] + s * local[:, 2]
        world_z = -s * local[:, 0] + c * local[:, 2]
        return np.stack([world_x, local[:, 1], world_z], axis=1) + np.asarray(self.center)

    @property
    def footprint_radius(self) -> float:
        return math.hypot(self.half[0], self.half[2])

    @property
    def top(self) -> float:
        return self.center[1] + self.half[1]


@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    material: Material

    def corners(self) -> np.ndarray:
        return _CORNER_SIGNS * self.radius + np.asarray(self.center)

    @property
    def footprint_radius(self) -> float:
        return self.radius

    @property
    def top(self) -> float:
        return self.center[1] + self.radius


@dataclass(frozen=True)
class Cylinder:
    """An upright cylinder: axis at (x, z), from height y0 to y1."""

    x: float
    z: float
    y0: float
    y1: float
    radius: float
    material: Material

    def corners(self) -> np.ndarray:
        half = np.array([self.radius, 0.5 * (self.y1 - self.y0), self.radius])
        return _CORNER_SIGNS * half + np.asarray(self.center)

    @property
    def center(self) -> tuple[float, float, float]:
        return self.x, 0.5 * (self.y0 + self.y1), self.z

    @property
    def footprint_radius(self) -> float:
        return self.radius

    @property
    def top(self) -> float:
        return self.y1


@dataclass(frozen=True)
class Light:
    """A point light; `reach` is the distance at which its irradiance has halved (a soft 1/d^2)."""

    position: tuple[float, float, float]
    power: float
    reach: float


@dataclass(frozen=True)
class Room:
    """The axis-aligned room [0, size_x] x [0, size_y] x [0, size_z] (y up) and its six materials.

    `materials` are indexed by `ROOM_SURFACES`.
    """

    size: tuple[float, float, float]
    materials: tuple[Material, ...]


# Surface ids of the room; objects get ids from len(ROOM_SURFACES) on.
ROOM_SURFACES = ("floor", "ceiling", "wall_x0", "wall_x1", "wall_z0", "wall_z1")
FLOOR, CEILING = 0, 1

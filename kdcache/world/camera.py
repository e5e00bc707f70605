"""The pinhole camera of the synthetic world: NYU Kinect intrinsics, a pose, and cached pixel rays.

Conventions (also relied on by the tests and by anyone re-deriving geometry from `Sample.meta`):
- World frame: x right, y up (floor at y = 0), z forward into the room; metres.
- Camera frame: OpenCV (x right, y down, z along the optical axis).
- Pixel (row v, col u) has its centre at integer coordinates; its ray in the camera frame is
  `((u - cx) / fx, (v - cy) / fy, 1)`. Because the z component is 1, the ray parameter `t` of a hit
  *is* its z-depth along the optical axis, which is what NYU's depth maps store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# NYU Depth v2 colour camera at 640x480: fx_rgb, fy_rgb, cx_rgb, cy_rgb of the NYU toolbox's `camera_params.m`
# (Silberman et al. 2012), rounded to 4 decimals.
NYU_SIZE = (480, 640)
NYU_FX, NYU_FY, NYU_CX, NYU_CY = 518.8579, 519.4696, 325.5824, 253.7362


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float

    def as_dict(self) -> dict[str, float]:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}


@lru_cache(maxsize=32)
def nyu_intrinsics(height: int, width: int) -> Intrinsics:
    """NYU's intrinsics rescaled to (height, width), pixel centres kept aligned with the 640x480 grid."""
    sx, sy = width / NYU_SIZE[1], height / NYU_SIZE[0]
    return Intrinsics(
        fx=NYU_FX * sx,
        fy=NYU_FY * sy,
        cx=(NYU_CX + 0.5) * sx - 0.5,
        cy=(NYU_CY + 0.5) * sy - 0.5,
    )


@lru_cache(maxsize=32)
def camera_rays(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel camera-frame ray slopes `(x/z, y/z)`, each (H, W) float32, cached per size.

    Read only: the arrays are shared between every image of that size.
    """
    k = nyu_intrinsics(height, width)
    cols = (np.arange(width, dtype=np.float64) - k.cx) / k.fx
    rows = (np.arange(height, dtype=np.float64) - k.cy) / k.fy
    slope_x = np.broadcast_to(cols[None, :], (height, width)).astype(np.float32)
    slope_y = np.broadcast_to(rows[:, None], (height, width)).astype(np.float32)
    slope_x.flags.writeable = False
    slope_y.flags.writeable = False
    return slope_x, slope_y


@lru_cache(maxsize=32)
def ray_norm2(height: int, width: int) -> np.ndarray:
    """Squared length of every pixel's ray (H, W) float32; rotations keep it, so it is cached per size."""
    slope_x, slope_y = camera_rays(height, width)
    norm2 = slope_x * slope_x + slope_y * slope_y + np.float32(1.0)
    norm2.flags.writeable = False
    return norm2


@dataclass(frozen=True)
class Pose:
    """Camera position (world) and orientation; angles in radians.

    yaw turns right about the world up axis, pitch > 0 looks up, roll tilts the horizon clockwise.
    """

    position: tuple[float, float, float]
    yaw: float
    pitch: float
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """3x3 matrix whose columns are the camera's x (right), y (down), z (forward) axes in world."""
        cy_, sy_ = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        forward = np.array([sy_ * cp, sp, cy_ * cp])
        right = np.array([cy_, 0.0, -sy_])
        down = np.array([sy_ * sp, -cp, cy_ * sp])  # orthogonal to both, pointing down when level
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        right, down = cr * right + sr * down, -sr * right + cr * down
        return np.stack([right, down, forward], axis=1)


@lru_cache(maxsize=32)
def _homogeneous_rays(height: int, width: int) -> np.ndarray:
    """(3, H*W) float32 stack of (x/z, y/z, 1) per pixel, for one matrix product per image."""
    slope_x, slope_y = camera_rays(height, width)
    rays = np.stack([slope_x.ravel(), slope_y.ravel(), np.ones(height * width, np.float32)])
    rays.flags.writeable = False
    return rays


def world_rays(pose: Pose, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World-frame ray directions (dx, dy, dz), each (H, W) float32, scaled so t == z-depth."""
    rays = pose.rotation().astype(np.float32) @ _homogeneous_rays(height, width)
    return tuple(row.reshape(height, width) for row in rays)  # type: ignore[return-value]


def project(points: np.ndarray, pose: Pose, k: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World points (..., 3) -> pixel columns u, rows v and z-depths (each (...))."""
    cam = (np.asarray(points, dtype=np.float64) - np.asarray(pose.position)) @ pose.rotation()
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return k.fx * cam[..., 0] / z + k.cx, k.fy * cam[..., 1] / z + k.cy, z


def screen_rects(corners: np.ndarray, pose: Pose, k: Intrinsics, height: int, width: int) -> list:
    """For each convex hull of `corners` (N, 8, 3): the pixel rectangle (r0, r1, c0, c1) surely holding
    its projection, or None when it is behind the camera or off screen.

    A hull straddling the camera plane projects unboundedly, so it gets the whole image (rare: objects
    keep clear of the camera). All hulls are projected in one matrix product.
    """
    u, v, z = project(corners, pose, k)
    behind = np.all(z <= 0, axis=1)
    straddles = np.any(z <= 1e-3, axis=1)
    c0 = np.clip(np.floor(u.min(axis=1)) - 1, 0, width).astype(int)
    c1 = np.clip(np.ceil(u.max(axis=1)) + 2, 0, width).astype(int)
    r0 = np.clip(np.floor(v.min(axis=1)) - 1, 0, height).astype(int)
    r1 = np.clip(np.ceil(v.max(axis=1)) + 2, 0, height).astype(int)
    rects = []
    for i in range(len(corners)):
        if behind[i]:
            rects.append(None)
        elif straddles[i]:
            rects.append((0, height, 0, width))
        elif c0[i] >= c1[i] or r0[i] >= r1[i]:
            rects.append(None)
        else:
            rects.append((int(r0[i]), int(r1[i]), int(c0[i]), int(c1[i])))
    return rects

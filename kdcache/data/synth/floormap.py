"""Baked floor shadows: soft blob shadows (one map per light) and contact occlusion on a coarse grid.

Every object throws a soft blob where the line from a light through its centre lands on the floor,
and darkens the floor's ambient light around its base. Evaluating those blobs per floor pixel costs
~8 operations x objects x lights per pixel; baking them once per image into 64x64 maps over the floor
(each blob only touching the cells it covers) and reading the maps back bilinearly costs a few
gathers per pixel instead. The blobs are smooth, so the coarse grid is invisible after interpolation.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
CELLS = 64


def _casts_shadow(obj, scale: float) -> bool:
    """Table legs and other thin things throw no blob worth drawing."""
    return obj.footprint_radius > 0.08 * scale


class FloorMaps:
    """Multiplicative maps over the floor [0, width] x [0, depth]: index 0 = ambient occlusion,
    then one direct-light shadow map per light in `scene.lights` (1 = unshadowed)."""

    def __init__(self, scene):
        width, _, depth = scene.room.size
        self.cell_x, self.cell_z = width / CELLS, depth / CELLS
        self.maps = np.ones((1 + len(scene.lights), CELLS, CELLS), np.float32)  # [map, z cell, x cell]
        for obj in scene.objects:
            if not _casts_shadow(obj, scene.scale):
                continue
            base = 2 * obj.center[1] - obj.top
            if base <= 0.05 * scene.scale:  # standing on the floor
                self._stamp(0, obj.center[0], obj.center[2], obj.footprint_radius * 1.15, _contact)
            for index, light in enumerate(scene.lights, start=1):
                blob = _blob(obj, light)
                if blob is not None:
                    self._stamp(index, *blob, _umbra)

    def _stamp(self, index: int, x: float, z: float, radius: float, profile) -> None:
        """Multiply `profile(d^2 / radius^2)` into the cells within 2 radii of (x, z)."""
        reach = 2.0 * radius
        i0, i1 = self._cells(x - reach, x + reach, self.cell_x)
        j0, j1 = self._cells(z - reach, z + reach, self.cell_z)
        if i0 >= i1 or j0 >= j1:
            return
        cx = ((np.arange(i0, i1) + 0.5) * self.cell_x - x).astype(np.float32)
        cz = ((np.arange(j0, j1) + 0.5) * self.cell_z - z).astype(np.float32)
        ratio2 = (cz[:, None] ** 2 + cx[None, :] ** 2) * F32(1.0 / radius**2)
        self.maps[index, j0:j1, i0:i1] *= profile(ratio2)

    @staticmethod
    def _cells(lo: float, hi: float, cell: float) -> tuple[int, int]:
        return max(int(lo / cell), 0), min(int(hi / cell) + 2, CELLS)

    def sample(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Bilinear read of every map at floor points (x, z): (n_maps, M) float32."""
        gx = np.clip(x * F32(1.0 / self.cell_x) - F32(0.5), F32(0.0), F32(CELLS - 1.001))
        gz = np.clip(z * F32(1.0 / self.cell_z) - F32(0.5), F32(0.0), F32(CELLS - 1.001))
        fx, fz = np.floor(gx), np.floor(gz)
        ax, az = gx - fx, gz - fz
        i00 = fz.astype(np.int32) * CELLS + fx.astype(np.int32)
        flat = self.maps.reshape(len(self.maps), -1)
        out = np.empty((len(self.maps), x.size), np.float32)
        for k, grid in enumerate(flat):
            top = grid[i00]
            top += (grid[i00 + 1] - top) * ax
            bottom = grid[i00 + CELLS]
            bottom += (grid[i00 + CELLS + 1] - bottom) * ax
            out[k] = top + (bottom - top) * az
        return out


def _blob(obj, light):
    """(x, z, radius) of the shadow `obj` throws from `light`, or None when it is level with the light."""
    lx, ly, lz = light.position
    cx, cy, cz = obj.center
    if cy >= ly - 1e-3:
        return None
    stretch = ly / (ly - cy)  # similar triangles from the light through the centre down to the floor
    return lx + (cx - lx) * stretch, lz + (cz - lz) * stretch, obj.footprint_radius * min(stretch, 3.0) * 0.9


def _umbra(ratio2: np.ndarray) -> np.ndarray:
    """Soft disc: 0.25 lit at the centre, fading to fully lit at the blob's radius."""
    inside = np.maximum(F32(1.0) - ratio2, F32(0.0))
    return F32(1.0) - F32(0.75) * inside * inside


def _contact(ratio2: np.ndarray) -> np.ndarray:
    """Gaussian darkening of ambient light around an object's base."""
    return F32(1.0) - F32(0.5) * np.exp(-ratio2)

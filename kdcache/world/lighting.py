"""Irradiance of one surface's pixels: hemispherical ambient with corner occlusion, Lambertian point
lights, and on the floor the objects' soft shadows.

Real shadow rays would cost a ray cast per light per object; instead each object throws a soft blob
shadow on the floor plus a contact shadow at its base. These are the cues a depth network uses (objects
standing *on* the floor), at a fraction of the cost. Irradiance is grey; the illuminant's colour is applied
once per image.

Baked floor shadows (`FloorMaps`): every object throws a soft blob where the line from a light through its
centre lands on the floor, and darkens the floor's ambient light around its base. Evaluating those blobs per
floor pixel costs ~8 operations x objects x lights per pixel; baking them once per image into 64x64 maps over
the floor (each blob only touching the cells it covers) and reading the maps back bilinearly costs a few
gathers per pixel instead. The blobs are smooth, so the coarse grid is invisible after interpolation.
"""

from __future__ import annotations

import numpy as np

from kdcache.world.shapes import CEILING, FLOOR, ROOM_SURFACES

F32 = np.float32


def irradiance(scene, surface: int, points, normal) -> np.ndarray:
    """(M,) irradiance at hit `points` (3 arrays) of `surface` with `normal` (3 floats or 3 arrays)."""
    # The floor also gets the objects' baked shadows: [contact occlusion, shadow of light 0, ...].
    floor = FloorMaps(scene).sample(points[0], points[2]) if surface == FLOOR else None
    total = _ambient(scene, surface, points, normal)
    if floor is not None:
        total *= floor[0]
    total *= F32(scene.ambient)
    for index, light in enumerate(scene.lights, start=1):
        diffuse = _lambert(light, points, normal)
        if floor is not None:
            diffuse *= floor[index]
        total += diffuse * F32(light.power)
    return total


def _ambient(scene, surface: int, points, normal) -> np.ndarray:
    """Sky-like ambient (more from above), darkened towards room edges and corners."""
    px, py, pz = points
    ambient = F32(0.8) + F32(0.2) * normal[1]
    if surface < len(ROOM_SURFACES):
        width, height, depth = (F32(s) for s in scene.room.size)
        # Distance to the nearest room edge on this surface: the walls of the other two axes.
        if surface in (FLOOR, CEILING):
            gap = np.minimum(np.minimum(px, width - px), np.minimum(pz, depth - pz))
        elif surface <= 3:
            gap = np.minimum(np.minimum(py, height - py), np.minimum(pz, depth - pz))
        else:
            gap = np.minimum(np.minimum(py, height - py), np.minimum(px, width - px))
        ambient = ambient * (F32(1.0) - F32(0.45) * np.exp(gap * F32(-1.0 / (0.35 * scene.scale))))
    if np.ndim(ambient) == 0:  # a constant-normal surface with no occlusion term
        return np.full(px.shape, ambient, np.float32)
    return ambient


def dot(vector, normal):
    """vector . normal for 3 arrays and a normal of 3 arrays or 3 floats (zero floats cost nothing)."""
    total = None
    for a, n in zip(vector, normal):
        if isinstance(n, float):
            if n == 0.0:
                continue
            term = a if n == 1.0 else a * F32(n)
        else:
            term = a * n
        total = term if total is None else total + term
    return total


def _lambert(light, points, normal) -> np.ndarray:
    # In-place where possible: these arrays are large and memory traffic is the cost.
    to_light = tuple(F32(p_light) - p for p_light, p in zip(light.position, points))
    dist2 = to_light[0] * to_light[0]
    dist2 += to_light[1] * to_light[1]
    dist2 += to_light[2] * to_light[2]
    cosine = dot(to_light, normal)
    np.maximum(cosine, F32(0.0), out=cosine)
    cosine /= np.sqrt(dist2)
    # cos / (1 + d^2 / reach^2), written as cos * reach^2 / (reach^2 + d^2)
    dist2 += F32(light.reach**2)
    cosine *= F32(light.reach**2)
    cosine /= dist2
    return cosine


# ---------------- baked floor shadows


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

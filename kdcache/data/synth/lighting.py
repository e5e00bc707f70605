"""Irradiance of one surface's pixels: hemispherical ambient with corner occlusion, Lambertian point
lights, soft floor shadows.

Real shadow rays would cost a ray cast per light per object; instead each object throws a soft blob
shadow on the floor where the line from the light through its centre lands, plus a contact shadow
at its base. These are the cues a depth network uses (objects standing *on* the floor), at a
fraction of the cost. Irradiance is grey; the illuminant's colour is applied once per image.
"""

from __future__ import annotations

import numpy as np

from kdcache.data.synth.shapes import CEILING, FLOOR, ROOM_SURFACES

F32 = np.float32


def irradiance(scene, surface: int, points, normal) -> np.ndarray:
    """(M,) irradiance at hit `points` (3 arrays) of `surface` with `normal` (3 floats or 3 arrays)."""
    total = _ambient(scene, surface, points, normal) * F32(scene.ambient)
    for light in scene.lights:
        diffuse = _lambert(light, points, normal)
        if surface == FLOOR:
            diffuse *= _floor_shadow(scene, light, points[0], points[2])
        total += diffuse * F32(light.power)
    return total


def _ambient(scene, surface: int, points, normal) -> np.ndarray:
    """Sky-like ambient (more from above) darkened in room corners and at object bases."""
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
    if surface == FLOOR:
        ambient = ambient * _contact_shadow(scene, px, pz)
    return np.broadcast_to(ambient, px.shape).astype(np.float32)


def _lambert(light, points, normal) -> np.ndarray:
    lx, ly, lz = (F32(p_light) - p for p_light, p in zip(light.position, points))
    dist2 = lx * lx + ly * ly + lz * lz
    cosine = (lx * normal[0] + ly * normal[1] + lz * normal[2]) / np.sqrt(dist2)
    falloff = F32(1.0) / (F32(1.0) + dist2 * F32(1.0 / light.reach**2))
    return np.maximum(cosine, F32(0.0)) * falloff


def _casts_shadow(obj, scale: float) -> bool:
    """Table legs and other thin things throw no blob worth its cost."""
    return obj.footprint_radius > 0.08 * scale


def _floor_shadow(scene, light, x, z) -> np.ndarray:
    """Soft blob shadows on floor points (x, z) for one light: 1 = lit, down to 0.25 in the umbra."""
    lit = np.ones_like(x)
    lx, ly, lz = light.position
    for obj in scene.objects:
        cx, cy, cz = obj.center
        if cy >= ly - 1e-3 or not _casts_shadow(obj, scene.scale):
            continue
        stretch = ly / (ly - cy)  # similar triangles from the light through the centre to the floor
        sx, sz = lx + (cx - lx) * stretch, lz + (cz - lz) * stretch
        radius2 = (obj.footprint_radius * min(stretch, 3.0) * 0.9) ** 2
        dist2 = (x - F32(sx)) ** 2 + (z - F32(sz)) ** 2
        umbra = np.maximum(F32(1.0) - dist2 * F32(1.0 / radius2), F32(0.0))
        lit *= F32(1.0) - F32(0.75) * umbra * umbra
    return lit


def _contact_shadow(scene, x, z) -> np.ndarray:
    """Ambient occlusion under and around objects standing on the floor."""
    occlusion = np.ones_like(x)
    for obj in scene.objects:
        base = 2 * obj.center[1] - obj.top
        if base > 0.05 * scene.scale or not _casts_shadow(obj, scene.scale):
            continue
        inv_r2 = F32(1.0 / (obj.footprint_radius * 1.15) ** 2)
        dist2 = (x - F32(obj.center[0])) ** 2 + (z - F32(obj.center[2])) ** 2
        occlusion *= F32(1.0) - F32(0.5) * np.exp(-dist2 * inv_r2)
    return occlusion

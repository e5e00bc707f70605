"""Irradiance of one surface's pixels: hemispherical ambient with corner occlusion, Lambertian point
lights, and on the floor the objects' soft shadows.

Real shadow rays would cost a ray cast per light per object; instead each object throws a soft blob
shadow on the floor plus a contact shadow at its base (`floormap.py`). These are the cues a depth
network uses (objects standing *on* the floor), at a fraction of the cost. Irradiance is grey; the
illuminant's colour is applied once per image.
"""

from __future__ import annotations

import numpy as np

from kdcache.data.synth.floormap import FloorMaps
from kdcache.data.synth.shapes import CEILING, FLOOR, ROOM_SURFACES

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

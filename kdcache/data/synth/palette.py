"""Random but plausible materials for each kind of surface (floors look like floors, walls like walls)."""

from __future__ import annotations

import colorsys
import math

from kdcache.data.synth.draws import Draws
from kdcache.data.synth.textures import Material


def pick(rng: Draws, options, p=None):
    """One of `options` (with probabilities `p`); plain Python, ~20x faster than `rng.choice`."""
    if p is None:
        return options[int(rng.integers(len(options)))]
    x, acc = rng.random(), 0.0
    for option, weight in zip(options, p):
        acc += weight
        if x < acc:
            return option
    return options[-1]


def _linear(h: float, s: float, v: float) -> tuple[float, float, float]:
    """HSV (sRGB-ish) -> linear RGB, so shading happens in linear light and gamma comes last."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return r**2.2, g**2.2, b**2.2


def _pair(rng: Draws, h: float, s: float, v: float, contrast: float):
    """Two related colours: same family, one darker (and slightly shifted in hue)."""
    dh = rng.normal(0, 0.03)
    return _linear(h, s, v), _linear(h + dh, s * rng.uniform(0.8, 1.2), v * (1 - contrast))


def floor_material(rng: Draws, scale: float) -> Material:
    kind = pick(rng, ["wood", "checker", "noise", "plain"], [0.4, 0.25, 0.25, 0.1])
    if kind == "wood":
        a, b = _pair(rng, rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.7), rng.uniform(0.45, 0.8), 0.45)
        return Material("wood", a, b, period=rng.uniform(0.12, 0.25), angle=pick(rng, [0.0, math.pi / 2]),
                        grain=0.08)
    if kind == "checker":
        a = _linear(rng.uniform(0, 1), rng.uniform(0, 0.25), rng.uniform(0.7, 0.95))
        b = _linear(rng.uniform(0, 1), rng.uniform(0, 0.4), rng.uniform(0.15, 0.55))
        return Material("checker", a, b, period=rng.uniform(0.5, 1.2) * math.sqrt(scale),
                        angle=pick(rng, [0.0, math.pi / 4]), grain=0.1)
    a, b = _pair(rng, rng.uniform(0, 1), rng.uniform(0.05, 0.5), rng.uniform(0.35, 0.75), 0.35)
    return Material(str(kind), a, b, period=rng.uniform(0.6, 2.0), grain=rng.uniform(0.15, 0.3))


def wall_material(rng: Draws) -> Material:
    kind = pick(rng, ["plain", "stripes", "noise"], [0.6, 0.25, 0.15])
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.03, 0.3), rng.uniform(0.65, 0.95)
    a, b = _pair(rng, hue, sat, val, rng.uniform(0.1, 0.3))
    return Material(str(kind), a, b, period=rng.uniform(0.15, 0.5), angle=0.0, grain=rng.uniform(0.04, 0.1),
                    offset=(rng.uniform(0, 50), rng.uniform(0, 50)))


def ceiling_material(rng: Draws) -> Material:
    v = rng.uniform(0.82, 0.97)
    a = _linear(rng.uniform(0.05, 0.15), rng.uniform(0, 0.08), v)
    return Material("plain", a, _linear(0.1, 0.05, v * 0.9), period=1.5, grain=0.04,
                    offset=(rng.uniform(0, 50), rng.uniform(0, 50)))


def object_material(rng: Draws, scale: float) -> Material:
    kind = pick(rng, ["plain", "checker", "stripes", "noise", "wood"], [0.3, 0.15, 0.2, 0.15, 0.2])
    if kind == "wood":
        a, b = _pair(rng, rng.uniform(0.04, 0.12), rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.8), 0.5)
        period = rng.uniform(0.15, 0.4)
    else:
        a, b = _pair(rng, rng.uniform(0, 1), rng.uniform(0.2, 0.85), rng.uniform(0.35, 0.95),
                     rng.uniform(0.3, 0.7))
        period = rng.uniform(0.08, 0.4)
    return Material(kind, a, b, period=period * scale, angle=pick(rng, [0.0, 0.0, math.pi / 2, rng.uniform(0, 3)]),
                    grain=rng.uniform(0.03, 0.15), offset=(rng.uniform(0, 50), rng.uniform(0, 50)))


def picture_material(rng: Draws) -> Material:
    """Framed pictures / posters: busy, saturated noise or stripes."""
    kind = pick(rng, ["noise", "stripes", "checker"], [0.6, 0.25, 0.15])
    a = _linear(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.4, 1.0))
    b = _linear(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.1, 0.6))
    return Material(kind, a, b, period=rng.uniform(0.08, 0.4), angle=rng.uniform(0, 3), grain=0.05,
                    offset=(rng.uniform(0, 50), rng.uniform(0, 50)))

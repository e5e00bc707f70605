"""Materials of the synthetic world: procedural surface textures and plausible colours for each kind of surface.

Textures are evaluated in surface coordinates (metres), so texture scale is a depth cue. Every pattern returns a
mix factor in [0, 1] between a material's two colours. Checker and stripes are box-filtered analytically over the
pixel footprint (Inigo Quilez's filtered square wave), so distant surfaces fade to their mean colour instead of
aliasing into moire, like a real lens would.

The palette draws random but plausible materials per kind of surface (floors look like floors, walls like walls).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from kdcache.world.draws import Draws
from kdcache.registry import Registry

F32 = np.float32

PATTERNS: Registry = Registry("synth texture")

NOISE_TILE = 256


@lru_cache(maxsize=1)
def noise_tile() -> np.ndarray:
    """A periodic 256x256 fractal value-noise tile in [0, 1], float32 (fixed seed: part of the world)."""
    rng = np.random.default_rng(20240611)
    tile = np.zeros((NOISE_TILE, NOISE_TILE), np.float64)
    amplitude, total = 1.0, 0.0
    for cells in (4, 8, 16, 32, 64, 128):
        lattice = rng.random((cells, cells))
        # Smoothstep-interpolated value noise on a periodic lattice.
        coords = np.arange(NOISE_TILE) * cells / NOISE_TILE
        i0 = np.floor(coords).astype(int)
        f = coords - i0
        f = f * f * (3 - 2 * f)
        i1 = (i0 + 1) % cells
        rows0, rows1 = lattice[i0], lattice[i1]
        rows = rows0 * (1 - f)[:, None] + rows1 * f[:, None]
        octave = rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]
        tile += amplitude * octave
        total += amplitude
        amplitude *= 0.55
    tile /= total
    tile = (tile - tile.min()) / (tile.max() - tile.min())
    return tile.astype(np.float32).ravel()


def sample_noise(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of the periodic noise tile at (u, v) in tile-cell units; float32 in [0, 1]."""
    tile = noise_tile()
    fu, fv = np.floor(u), np.floor(v)
    au, av = u - fu, v - fv
    mask = NOISE_TILE - 1
    i0 = fu.astype(np.int32) & mask
    j0 = (fv.astype(np.int32) & mask) * NOISE_TILE
    i1 = (i0 + 1) & mask
    j1 = (j0 + NOISE_TILE) & (NOISE_TILE * NOISE_TILE - 1)
    top = tile[j0 + i0]
    top += (tile[j0 + i1] - top) * au
    bottom = tile[j1 + i0]
    bottom += (tile[j1 + i1] - bottom) * au
    return top + (bottom - top) * av


def sample_grain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Nearest-cell lookup (one gather): for fine grain, where interpolation would be invisible."""
    mask = NOISE_TILE - 1
    return noise_tile()[((v.astype(np.int32) & mask) << 8) + (u.astype(np.int32) & mask)]


def hash01(x: np.ndarray) -> np.ndarray:
    """A cheap per-integer pseudo-random value in [0, 1) (the classic fract(sin(x) * 43758.5))."""
    h = np.sin(x * F32(12.9898)) * F32(43758.5453)
    return h - np.floor(h)


def _square_wave_mean(x: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Box-filtered square wave of period 2 (+1 / -1) over `width`; tends to 0 as width grows."""
    lo = (x - F32(0.5) * width) * F32(0.5)
    hi = (x + F32(0.5) * width) * F32(0.5)
    lo = np.abs(lo - np.floor(lo) - F32(0.5))  # x - floor(x): np.mod is ~30x slower
    hi = np.abs(hi - np.floor(hi) - F32(0.5))
    wave = F32(2.0) * (lo - hi) / width
    # float32 rounding of large coordinates over a tiny width can overshoot +-1 a little.
    return np.minimum(np.maximum(wave, F32(-1.0)), F32(1.0))


@dataclass(frozen=True)
class Material:
    """Two colours (linear RGB), a pattern, its period in metres, rotation, and a grain amount."""

    pattern: str
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    period: float = 0.5
    angle: float = 0.0
    grain: float = 0.1
    offset: tuple[float, float] = (0.0, 0.0)


def material_pattern(mat: Material, u: np.ndarray, v: np.ndarray, footprint: np.ndarray):
    """(mix, shade) at surface coords (u, v) given each pixel's footprint (m); shade is None if no grain.

    The albedo is `(color_a + mix * (color_b - color_a)) * shade`, evaluated per channel by the renderer.
    """
    ca, sa = np.cos(mat.angle), np.sin(mat.angle)
    inv = 1.0 / mat.period
    su = u * F32(ca * inv) - v * F32(sa * inv) + F32(mat.offset[0])
    sv = u * F32(sa * inv) + v * F32(ca * inv) + F32(mat.offset[1])
    width = footprint * F32(2.0 * inv) + F32(1e-4)  # square-wave units: one period is 2
    mix = PATTERNS.create(mat.pattern, su, sv, width)
    if mat.grain <= 0:
        return mix, None
    # Grain fades with distance like any detail finer than a pixel.
    amount = F32(2.0 * mat.grain) / (F32(1.0) + width * F32(4.0))
    return mix, F32(1.0) + (sample_grain(su * F32(23.0), sv * F32(23.0)) - F32(0.5)) * amount


@PATTERNS.register("plain")
def plain(su: np.ndarray, sv: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Paint with faint large-scale mottling (two crossed low-frequency waves; the grain adds detail).

    Sines cost a tenth of a bilinear noise lookup, and plain walls are the largest surfaces.
    """
    wave = np.sin(su * F32(0.9) + sv * F32(0.4)) * np.sin(su * F32(0.3) - sv * F32(0.8) + F32(1.3))
    return F32(0.12) + F32(0.12) * wave


@PATTERNS.register("checker", filtered=True)
def checker(su: np.ndarray, sv: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Tiles: filtered 2D checkerboard, one square per half period."""
    sx = _square_wave_mean(su * F32(2.0), width)
    sy = _square_wave_mean(sv * F32(2.0), width)
    return F32(0.5) - F32(0.5) * sx * sy


@PATTERNS.register("stripes", filtered=True)
def stripes(su: np.ndarray, sv: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Wallpaper / fabric stripes along v, filtered across u."""
    return F32(0.5) - F32(0.5) * _square_wave_mean(su * F32(2.0), width)


@PATTERNS.register("noise")
def noise(su: np.ndarray, sv: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Stone / carpet: fractal value noise at the material period, contrast-stretched."""
    n = sample_noise(su * F32(8.0), sv * F32(8.0))
    return np.clip((n - F32(0.5)) * F32(2.2) + F32(0.5), 0.0, 1.0)


@PATTERNS.register("wood", filtered=True)
def wood(su: np.ndarray, sv: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Planks along v (one per period across u) with growth-ring bands, per-plank tone and dark seams."""
    plank = np.floor(su)
    across = su - plank
    tone = hash01(plank)
    # Per-plank shift of the grain so neighbouring planks do not line up.
    wobble = sample_noise(su * F32(3.0), sv * F32(0.4) + tone * F32(97.0)) * F32(5.0)
    rings = F32(0.5) + F32(0.5) * np.sin((across * F32(6.0) + wobble) * F32(6.2832))
    rings *= rings
    # Band-limit like the filtered patterns: rings (3 per width unit) and plank tones (1 per 2) average
    # out once a pixel spans several of them.
    rings = F32(0.375) + (rings - F32(0.375)) / (F32(1.0) + (width * F32(3.0)) ** 2)
    tone = F32(0.5) + (tone - F32(0.5)) / (F32(1.0) + (width * F32(0.5)) ** 2)
    # Seams fade out once a pixel covers a good part of a plank.
    seam_visible = np.maximum(F32(1.0) - width * F32(2.0), F32(0.0))
    seam = (np.minimum(across, F32(1.0) - across) < F32(0.025)) * seam_visible
    mix = F32(0.15) + F32(0.45) * rings + F32(0.4) * tone + seam * F32(0.9)
    return np.minimum(mix, F32(1.0))


# ---------------- the palette: a random material per kind of surface


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

"""`Draws`: the scene sampler's random numbers, pre-drawn in blocks.

Sampling a scene takes a few hundred scalar draws; each `Generator.uniform()` call costs ~1 us of
Python/numpy overhead, a noticeable share of a 10 ms image. Drawing 256 uniforms at once and handing
them out from a list is ~20x cheaper and just as deterministic per seed.
"""

from __future__ import annotations

import math

import numpy as np

_BLOCK = 256


class Draws:
    """The subset of `numpy.random.Generator`'s scalar API that scene sampling uses."""

    def __init__(self, generator: np.random.Generator):
        self._generator = generator
        self._pool: list[float] = []

    def random(self) -> float:
        """Uniform in [0, 1)."""
        if not self._pool:
            self._pool = self._generator.random(_BLOCK).tolist()
            self._pool.reverse()
        return self._pool.pop()

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * self.random()

    def integers(self, low: int, high: int | None = None) -> int:
        """Uniform integer in [low, high), or [0, low) when `high` is None (like `Generator.integers`)."""
        if high is None:
            low, high = 0, low
        return min(low + int(self.random() * (high - low)), high - 1)

    def normal(self, loc: float = 0.0, scale: float = 1.0) -> float:
        """Gaussian by the Box-Muller transform of two uniforms."""
        u1 = 1.0 - self.random()  # (0, 1]: log is finite
        return loc + scale * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * self.random())

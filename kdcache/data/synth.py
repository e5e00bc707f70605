"""The synthetic splits: rooms of the procedural world (`kdcache.world`) rendered on demand from a per-(split, index)
seed; no files anywhere.

| split           | labels        | samples | world                                   |
|-----------------|---------------|---------|-----------------------------------------|
| `synth-train`   | metric depth  | 20000   | indoor rooms, depth 0.5-10 m            |
| `synth-test`    | metric depth  | 1000    | same world, disjoint seeds              |
| `synth-aux`     | none          | 50000   | same world as train (unlabeled pool)    |
| `synth-aux-far` | none          | 20000   | halls 3-4x larger, depth up to ~30-40 m |
| `synth-aux-vast`| none          | 20000   | halls 6-8x larger, depth up to ~60-80 m |
| `synth-aux-vast`| none          | 20000   | halls 6-8x larger, depth up to ~60-80 m |

Sample `i` of a split is rendered from `numpy.random.default_rng(salt << 32 | i)` (via `Draws`), so it is identical
across processes and DataLoader workers (scene geometry and depth also across machines; pixel values up to the
last-bit rounding of numpy's vectorised sin/exp on other CPUs), and splits never share a seed.

`save_grid` draws a contact sheet of them for the docs:

    python -c "from kdcache.data.synth import save_grid; save_grid('docs/images/synth_grid.png')"
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kdcache.atomic import replacing
from kdcache.depth_colors import matplotlib_depth
from kdcache.data.sample import Sample
from kdcache.data.splits import register_split
from kdcache.errors import KdcacheError
from kdcache.world.camera import nyu_intrinsics
from kdcache.world.draws import Draws
from kdcache.world.render import render
from kdcache.world.scene import FAR, INDOOR, VAST, World, sample_scene

DEFAULT_SIZE = (240, 320)
MIN_DEPTH = 0.5
# Options other readers take that generic callers may pass to every split; rendering has no use for them
# (it cannot fail per sample, and its ground truth is exact), anything else is a typo worth reporting.
_CROSS_READER_OPTIONS = ("gt", "max_pixels", "fps", "stride", "image", "depth", "space", "depth_scale")


class SynthSplit:
    """A sized, indexable, picklable split of procedurally rendered rooms (see module docstring)."""

    def __init__(self, name: str, salt: int, length: int, world: World, labeled: bool,
                 size: tuple[int, int] = DEFAULT_SIZE, strict: bool | None = None):
        self.name = name
        self.strict = labeled if strict is None else bool(strict)  # iter_samples' policy; nothing can fail
        self.salt = salt
        self.length = length
        self.world = world
        self.labeled = labeled
        self.space = "depth" if labeled else None
        self.size = _check_size(size)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"SynthSplit({self.name!r}, n={self.length}, size={self.size}, world={self.world.name!r})"

    def seed(self, index: int) -> int:
        return (self.salt << 32) | index

    def depth_range(self, scale: float = 1.0) -> tuple[float, float]:
        """Range in which depth is valid for a scene of this world at `scale`."""
        return MIN_DEPTH, self.world.max_depth * scale + 0.2

    def render(self, index: int) -> Sample:
        """Sample `index` with its ground truth, even for unlabeled splits (previews, tests, debugging)."""
        index = self._check_index(index)
        height, width = self.size
        seed = self.seed(index)
        rng = Draws(np.random.default_rng(seed))
        scene = sample_scene(rng, self.world)
        image, depth = render(scene, height, width, rng)
        low, high = self.depth_range(scene.scale)
        valid = np.isfinite(depth) & (depth >= low) & (depth <= high)
        meta = _meta(self, scene, seed, index)
        return Sample(f"{self.name}/{index:06d}", image, depth, valid, "depth", meta)

    def __getitem__(self, index: int) -> Sample:
        sample = self.render(index)
        if not self.labeled:
            sample.depth = sample.valid = sample.space = None
        return sample

    def _check_index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"{self.name} has {self.length} samples; index {index} is out of range")
        return index


def _meta(split: SynthSplit, scene, seed: int, index: int) -> dict[str, Any]:
    pose = scene.pose
    return {
        "source": "synth",
        "split": split.name,
        "index": index,
        "seed": seed,
        "world": split.world.name,
        "intrinsics": nyu_intrinsics(*split.size).as_dict(),
        "room_size": [round(s, 4) for s in scene.room.size],
        "camera": {
            "position": [round(p, 4) for p in pose.position],
            "yaw": round(pose.yaw, 5), "pitch": round(pose.pitch, 5), "roll": round(pose.roll, 5),
        },
        "n_objects": len(scene.objects),
    }


def _check_size(size) -> tuple[int, int]:
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise KdcacheError(
            f"synthetic split size must be (height, width), got {size!r}: pass e.g. size=(240, 320)"
        ) from None
    if not (8 <= height <= 4096 and 8 <= width <= 4096):
        raise KdcacheError(
            f"synthetic split size {height}x{width} is out of range: use 8..4096 pixels per side, e.g. size=(240, 320)"
        )
    return height, width


def _factory(name: str, salt: int, length: int, world: World, labeled: bool):
    def make(root, size=DEFAULT_SIZE, strict=None, **opts) -> SynthSplit:
        # root is unused: nothing is on disk.
        unknown = sorted(set(opts) - set(_CROSS_READER_OPTIONS))
        if unknown:
            raise KdcacheError(f"{name} does not take option(s) {', '.join(unknown)}: it accepts size=(H, W)")
        return SynthSplit(name, salt, length, world, labeled, size, strict)

    make.__name__ = name.replace("-", "_")
    make.__doc__ = f"{name}: {length} procedurally rendered {'labeled' if labeled else 'unlabeled'} {world.name} rooms."
    return make


# Distinct salts keep the splits' seed streams disjoint; never change them (it would change the data).
_SPLITS = (
    ("synth-train", 1, 20000, INDOOR, True),
    ("synth-test", 2, 1000, INDOOR, True),
    ("synth-aux", 3, 50000, INDOOR, False),
    ("synth-aux-far", 4, 20000, FAR, False),
    ("synth-aux-vast", 5, 20000, VAST, False),
)
for _name, _salt, _length, _world, _labeled in _SPLITS:
    register_split(_name, labeled=_labeled, space="depth" if _labeled else None, world=_world.name,
                   length=_length)(_factory(_name, _salt, _length, _world, _labeled))


# ---------------------------------------------------------------- a contact sheet for the docs


def save_grid(path: str | os.PathLike = "docs/images/synth_grid.png", rows: int = 4, indoor_cols: int = 4,
              far_cols: int = 1, size: tuple[int, int] = (240, 320), start: int = 0) -> Path:
    """Render `rows` x (`indoor_cols` synth-train + `far_cols` synth-aux-far) samples into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kdcache.data.splits import open_split

    indoor = open_split("synth-train", size=size)
    far = open_split("synth-aux-far", size=size)
    cols = indoor_cols + far_cols
    height, width = size
    fig, axes = plt.subplots(2 * rows, cols, figsize=(cols * 2.6, rows * 2 * (2.6 * height / width + 0.25) + 0.5),
                             squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.65 / fig.get_figheight(), wspace=0.04,
                        hspace=0.18)
    for col in range(cols):
        split, offset = (indoor, col) if col < indoor_cols else (far, col - indoor_cols)
        for row in range(rows):
            index = start + row * (indoor_cols if split is indoor else far_cols) + offset
            sample = split.render(index)
            top, bottom = axes[2 * row, col], axes[2 * row + 1, col]
            top.imshow(sample.image)
            vmax = 10.0 if split is indoor else 40.0
            bottom.imshow(sample.depth, **matplotlib_depth(0.0, vmax))
            top.set_title(f"{split.name}[{index}]", fontsize=7)
            bottom.set_title(f"depth {sample.depth.min():.1f}-{sample.depth.max():.1f} m", fontsize=7)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("kdcache synthetic world: RGB above z-depth (inferno, bright = near; 0-10 m for "
                 "synth-train, 0-40 m for synth-aux-far)", fontsize=9, y=1 - 0.15 / fig.get_figheight())
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return Path(path)

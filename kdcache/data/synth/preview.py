"""A contact sheet of the synthetic world: RGB above colour-mapped depth, indoor and far samples.

    python -c "from kdcache.data.synth.preview import save_grid; save_grid('docs/images/synth_grid.png')"
"""

from __future__ import annotations

import os
from pathlib import Path

from kdcache.atomic import replacing
from kdcache.data.splits import open_split


def save_grid(path: str | os.PathLike = "docs/images/synth_grid.png", rows: int = 4, indoor_cols: int = 4,
              far_cols: int = 1, size: tuple[int, int] = (240, 320), start: int = 0) -> Path:
    """Render `rows` x (`indoor_cols` synth-train + `far_cols` synth-aux-far) samples into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            bottom.imshow(sample.depth, cmap="turbo", vmin=0.0, vmax=vmax)
            top.set_title(f"{split.name}[{index}]", fontsize=7)
            bottom.set_title(f"depth {sample.depth.min():.1f}-{sample.depth.max():.1f} m", fontsize=7)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("kdcache synthetic world: RGB above z-depth (turbo colour map, blue = near; 0-10 m for "
                 "synth-train, 0-40 m for synth-aux-far)", fontsize=9, y=1 - 0.15 / fig.get_figheight())
    return _save_atomic(fig, Path(path))


def _save_atomic(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path

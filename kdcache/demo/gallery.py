"""Pictures for the demo report: a gallery of predictions and the students' validation curves side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdcache.atomic import replacing
from kdcache.depth_colors import add_colorbar, matplotlib_depth


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    try:
        with replacing(path) as tmp:  # a killed demo never leaves a half-written picture
            fig.savefig(tmp, dpi=90)
    finally:
        _pyplot().close(fig)


def _to_depth(prediction: np.ndarray, space: str) -> np.ndarray:
    """Predictions to show as depth; a relative (disparity) output is shown as 1/disparity, unscaled."""
    return 1.0 / np.maximum(prediction, 1e-6) if space == "disparity" else prediction


def save_gallery(samples, predictors: dict[str, object], path: Path) -> None:
    """Rows of RGB | GT | one column per predictor (name -> `kdcache.evaluate.predictors.Predictor`).

    All depth panels of a row share the GT's colour range (its colour bar, in metres, at the row's end), so a better
    model looks more like the GT; colours follow `kdcache.depth_colors` (near = bright).
    """
    from kdcache.evaluate.protocols import upsample  # the metric protocol's own upsampling

    plt = _pyplot()
    columns = ["RGB", "GT", *predictors]
    fig, axes = plt.subplots(len(samples), len(columns), figsize=(2.4 * len(columns) + 0.6, 1.9 * len(samples)),
                             squeeze=False, layout="constrained")
    for row, sample in enumerate(samples):
        shape = sample.depth.shape
        lo, hi = np.percentile(sample.depth[sample.valid], [1, 99])
        panels = [sample.image, np.where(sample.valid, sample.depth, np.nan)]
        for predictor in predictors.values():
            prediction = predictor.predict(sample.image)
            panels.append(upsample(_to_depth(prediction, predictor.output_space), shape, align_corners=True))
        for col, panel in enumerate(panels):
            ax = axes[row][col]
            shown = ax.imshow(panel) if panel.ndim == 3 else ax.imshow(panel, **matplotlib_depth(lo, hi))
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=9)
        add_colorbar(fig, axes[row].tolist(), shown)
    _save(fig, path)


def save_validation_curves(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """Validation AbsRel against the step for every trained model, on one axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in curves.items():
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=name)
    ax.set(xlabel="step", ylabel="validation AbsRel", title="Validation AbsRel during training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)

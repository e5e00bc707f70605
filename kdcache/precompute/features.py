"""Pooled teacher features: grid pooling, the per-sample byte budget, and the PCA channel basis.

Every cached layer is pooled to one small grid (default: 1/8 of the cache resolution): adaptive average
pooling when the layer is at least as fine as the grid, bilinear interpolation (align_corners=False) in a
dimension where it is coarser. Stored as float16, a layer costs C * h * w * 2 bytes per sample; when the
layers together exceed the budget (default: the bytes of the stored uint8 image), each layer keeps
k = budget / (n_layers * h * w * 2) channels: the top-k PCA directions of its pooled feature vectors,
fitted once on the first samples of the first split and stored in the cache. Reconstruction:

    pooled[:, c] ~= sum_j stored[:, j] * components[j, c] + mean[c]
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from kdcache.errors import KdcacheError

POOLING = "adaptive-avg to the grid (bilinear, align_corners=False, along a dimension where the layer is coarser)"
PCA_MAX_VECTORS = 16384  # feature vectors used to fit a basis: plenty for <= 1024 channels, bounded cost


def default_grid(resolution: tuple[int, int]) -> tuple[int, int]:
    return max(1, resolution[0] // 8), max(1, resolution[1] // 8)


def check_grid(grid) -> tuple[int, int]:
    """A feature grid of two positive sides, as (h, w); anything else is one line naming --feature-grid."""
    try:
        height, width = (int(v) for v in grid)
    except (TypeError, ValueError):
        raise KdcacheError(f"bad --feature-grid {grid!r}: use HxW, e.g. 30x40") from None
    if height < 1 or width < 1:
        raise KdcacheError(f"bad --feature-grid {height}x{width}: both sides must be at least 1, e.g. 30x40")
    return height, width


def pool_to_grid(features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, gh, gw) float32."""
    features = features.float()
    height, width = features.shape[-2:]
    if height < grid[0] or width < grid[1]:
        size = (max(height, grid[0]), max(width, grid[1]))
        features = F.interpolate(features, size=size, mode="bilinear", align_corners=False)
    return F.adaptive_avg_pool2d(features, grid)


def plan_channels(source_channels: dict[str, int], grid: tuple[int, int], budget_bytes: int) -> dict[str, int]:
    """Channels kept per layer so that all layers together fit `budget_bytes` per sample (float16)."""
    share = budget_bytes // max(1, len(source_channels))
    per_channel = grid[0] * grid[1] * 2
    plan = {}
    for layer, channels in source_channels.items():
        keep = min(channels, share // per_channel)
        if keep < 1:
            raise KdcacheError(
                f"--feature-budget {budget_bytes} bytes cannot hold one channel of {len(source_channels)} layers at "
                f"grid {grid[0]}x{grid[1]}: raise --feature-budget or use a smaller --feature-grid"
            )
        plan[layer] = keep
    return plan


def cell_vectors(pooled: torch.Tensor, per_sample: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, m, C), on pooled's device: m <= per_sample evenly spaced grid cells of every sample
    (chosen before anything is copied to the host)."""
    batch, channels = pooled.shape[:2]
    cells = pooled.reshape(batch, channels, -1).transpose(1, 2)  # (B, h*w, C)
    keep = np.unique(np.linspace(0, cells.shape[1] - 1, min(per_sample, cells.shape[1])).astype(np.int64))
    return cells[:, torch.from_numpy(keep).to(pooled.device)].float()


@contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class PcaBasis:
    """Top-k principal directions of one layer's pooled feature vectors."""

    components: np.ndarray  # (k, C) float32, orthonormal rows
    mean: np.ndarray  # (C,) float32
    _on_device: dict = field(default_factory=dict, repr=False, compare=False)  # uploaded once per device

    @classmethod
    def fit(cls, vectors: np.ndarray, keep: int) -> "PcaBasis":
        """Fit on (n, C) feature vectors (grid cells of pooled maps, see `cell_vectors`).

        All in float32, so a fresh store's start-up is not kept waiting: the covariance of 16k x C vectors is one
        sgemm, and LAPACK's float64 symmetric eigensolver was measured at 1.1 s for C = 256 with two threads on a
        busy 2-core machine (15 ms single-threaded; 7-15 ms in float32 either way). The top components that PCA
        keeps are well conditioned in float32.
        """
        vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        mean = vectors.mean(dim=0)
        centred = vectors - mean
        covariance = centred.T @ centred / max(1, len(centred) - 1)
        with _one_thread():  # a C x C problem: more threads only spin (80 vs 7 ms measured on a busy 2-core box)
            eigenvalues, eigenvectors = (values.numpy() for values in torch.linalg.eigh(covariance))
        mean = mean.numpy()
        order = np.argsort(eigenvalues)[::-1][:keep]
        components = eigenvectors[:, order].T
        # Fix each direction's sign (largest-magnitude entry positive) so the basis is reproducible.
        signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
        return cls(components.astype(np.float32), mean.astype(np.float32))

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, k, h, w)."""
        key = str(pooled.device)
        if key not in self._on_device:
            self._on_device[key] = (torch.from_numpy(self.components).to(pooled.device),
                                    torch.from_numpy(self.mean).to(pooled.device))
        components, mean = self._on_device[key]
        centred = pooled - mean[None, :, None, None]
        return torch.einsum("bchw,kc->bkhw", centred, components)

    def reconstruct(self, stored: np.ndarray) -> np.ndarray:
        """(B, k, h, w) stored -> (B, C, h, w) approximate pooled features."""
        full = np.einsum("bkhw,kc->bchw", stored.astype(np.float32), self.components)
        return full + self.mean[None, :, None, None]

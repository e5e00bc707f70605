"""Running the teacher on a batch of cached images: depth (+ flip-TTA), pooled/projected features, checks.

Shared by `precompute` and `cache verify`, so a recomputation follows exactly the same path. A sample whose
output is not finite, or does not fit float16, is stored as zeros with `teacher_ok = False` and reported,
never stored silently.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from kdcache.precompute.features import PcaBasis, pool_to_grid

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class FeaturePlan:
    """What to cache of the teacher's features: layers, grid, array names and optional PCA bases."""

    layers: list[str] = field(default_factory=list)
    grid: tuple[int, int] = (1, 1)
    arrays: dict[str, str] = field(default_factory=dict)
    bases: dict[str, PcaBasis | None] = field(default_factory=dict)


def images_to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1] on `device`."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0)


class TargetMaker:
    """`maker(images_u8, readable) -> ({field: array}, {index: reason})` for one batch."""

    def __init__(self, teacher, plan: FeaturePlan, flip_tta: bool, device: str = "cpu", precision: str = "fp32"):
        self.teacher, self.plan, self.flip_tta = teacher, plan, flip_tta
        self.device = torch.device(device)
        self.precision = precision
        # (split, *indices) -> (batch, depth, pooled) computed while fitting the PCA basis
        self.prefilled: dict[tuple, tuple] = {}

    def _autocast(self):
        dtype = AUTOCAST_DTYPES.get(self.precision)
        if self.device.type == "cuda" and dtype is not None:
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()  # fp32 on CPU: the cache must hold the teacher's own numbers

    @torch.inference_mode()
    def raw(self, images: np.ndarray) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher depth (B, H, W) float32 and pooled features {layer: (B, C, gh, gw)} float32."""
        x = images_to_tensor(images, self.device)
        with self._autocast():
            out = self.teacher.predict(x, layers=tuple(self.plan.layers))
            depth = out.depth.float()
            if self.flip_tta:
                flipped = self.teacher.predict(torch.flip(x, dims=[-1]), layers=()).depth.float()
                depth = (depth + torch.flip(flipped, dims=[-1])) / 2
        pooled = {layer: pool_to_grid(out.features[layer], self.plan.grid) for layer in self.plan.layers}
        return depth, pooled

    def stored_features(self, pooled: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pooled features as stored: PCA-projected where the layer has a basis."""
        stored = {}
        for layer, values in pooled.items():
            basis = self.plan.bases.get(layer)
            stored[layer] = basis.project(values) if basis is not None else values
        return stored

    def __call__(self, images: np.ndarray, readable: np.ndarray, key: tuple | None = None):
        """Stored arrays for one batch and {position: reason} for samples marked invalid.

        `key` (the batch's sample indices) picks up outputs already computed while fitting the PCA basis.
        """
        cached = self.prefilled.pop(key, None) if key is not None else None
        depth, pooled = cached[1:] if cached is not None else self.raw(images)
        # Cast to float16 and check on the teacher's device (torch's cast is vectorised, numpy's is not);
        # a float16 overflow becomes inf and is caught by the same finiteness check.
        halves = {"teacher": depth.half()}
        for layer, values in self.stored_features(pooled).items():
            halves[f"features/{self.plan.arrays[layer]}"] = values.half()
        ok = torch.from_numpy(np.asarray(readable, dtype=bool).copy()).to(depth.device)
        problems: dict[int, str] = {}
        for name, values in halves.items():
            finite = torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
            for index in torch.nonzero(ok & ~finite).flatten().tolist():
                problems[int(index)] = f"non-finite or float16-overflowing teacher output in '{name}'"
            ok &= finite
        outputs = {}
        for name, values in halves.items():
            values[~ok] = 0  # invalid samples are stored as zeros, flagged by teacher_ok
            outputs[name] = values.cpu().numpy()
        ok = ok.cpu().numpy()
        outputs["teacher_ok"] = ok
        return outputs, problems

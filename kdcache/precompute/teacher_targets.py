"""Running the teacher on a batch of cached images: depth (+ flip-TTA), pooled/projected features, checks.

Shared by `precompute` and `cache verify`, so a recomputation follows exactly the same path. The work is split
where the host would otherwise wait for the device:

- `launch(images)` queues everything on the teacher's device (upload, forward, pooling, PCA projection, the
  float16 cast and the per-sample finiteness flags) and the copies back, and returns at once;
- `finish(download.wait(), readable)` runs on the host once that batch has arrived: a sample that is unreadable,
  not finite, or overflows float16 is stored as zeros with `teacher_ok = False` and reported, never silently.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from kdcache.devices import resolve_device
from kdcache.precompute.device import Download, runtime_for
from kdcache.precompute.features import PcaBasis, pool_to_grid

AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
FINITE = "finite:"  # prefix of the per-sample finiteness flags that travel with a batch's outputs


@dataclass
class FeaturePlan:
    """What to cache of the teacher's features: layers, grid, array names and optional PCA bases."""

    layers: list[str] = field(default_factory=list)
    grid: tuple[int, int] = (1, 1)
    arrays: dict[str, str] = field(default_factory=dict)
    bases: dict[str, PcaBasis | None] = field(default_factory=dict)


def images_to_tensor(images, runtime) -> torch.Tensor:
    """(B, H, W, 3) uint8 (numpy or tensor) -> (B, 3, H, W) float32 in [0, 1] on the runtime's device."""
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    return runtime.upload(tensor).permute(0, 3, 1, 2).float().div_(255.0)


class TargetMaker:
    """`maker(images_u8, readable) -> ({field: array}, {index: reason})` for one batch, or `launch` + `finish`."""

    def __init__(self, teacher, plan: FeaturePlan, flip_tta: bool, device: str | torch.device = "cpu",
                 precision: str = "fp32"):
        self.teacher, self.plan, self.flip_tta = teacher, plan, flip_tta
        self.device = resolve_device(device)
        self.precision = precision
        self.runtime = runtime_for(teacher, self.device)
        # (split, *indices) -> (depth, pooled) on the device, computed while fitting the PCA basis
        self.prefilled: dict[tuple, tuple] = {}

    def _autocast(self):
        dtype = AUTOCAST_DTYPES.get(self.precision)
        if self.device.type == "cuda" and dtype is not None:
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()  # fp32 on CPU: the cache must hold the teacher's own numbers

    @torch.inference_mode()
    def raw(self, images) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher depth (B, H, W) float32 and pooled features {layer: (B, C, gh, gw)} float32, on the device."""
        x = images_to_tensor(images, self.runtime)
        with self.runtime.forward(), self._autocast():
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

    @torch.inference_mode()
    def launch(self, images, key: tuple | None = None) -> Download:
        """Queue one batch on the device and its copy back; nothing here waits for the device.

        `key` (the batch's sample indices) picks up outputs already computed while fitting the PCA basis.
        """
        cached = self.prefilled.pop(key, None) if key is not None else None
        depth, pooled = cached if cached is not None else self.raw(images)
        # Cast to float16 on the device; an overflow becomes inf and fails the same finiteness flag.
        halves = {"teacher": depth.half()}
        for layer, values in self.stored_features(pooled).items():
            halves[f"features/{self.plan.arrays[layer]}"] = values.half()
        flags = {FINITE + name: torch.isfinite(values.reshape(len(values), -1)).all(dim=1)
                 for name, values in halves.items()}
        return self.runtime.download({**halves, **flags})

    @staticmethod
    def finish(outputs: dict[str, np.ndarray], readable: np.ndarray) -> tuple[dict, dict[int, str]]:
        """Stored arrays of an arrived batch, and {position: reason} for readable samples marked invalid."""
        ok = np.asarray(readable, dtype=bool).copy()
        problems: dict[int, str] = {}
        arrays = {name: values for name, values in outputs.items() if not name.startswith(FINITE)}
        for name in arrays:
            finite = outputs[FINITE + name]
            for index in np.flatnonzero(ok & ~finite):
                problems[int(index)] = f"non-finite or float16-overflowing teacher output in '{name}'"
            ok &= finite
        if not ok.all():
            for name, values in arrays.items():
                if not values.flags.writeable:
                    arrays[name] = values = values.copy()
                values[~ok] = 0  # invalid samples are stored as zeros, flagged by teacher_ok
        arrays["teacher_ok"] = ok
        return arrays, problems

    def __call__(self, images: np.ndarray, readable: np.ndarray, key: tuple | None = None):
        """Launch one batch and wait for it: `(arrays, problems)` (for `cache verify` and other one-offs)."""
        return self.finish(self.launch(images, key).wait(), readable)

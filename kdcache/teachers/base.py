"""The Teacher contract (architecture.md §2): what precompute may rely on, whatever the weights are.

A teacher owns its preprocessing: it receives (B,3,H,W) float images in [0,1] at the cache resolution,
resizes / normalises them its own way, runs under autocast for fp16/bf16, and hands back depth at (H,W)
in its `output_space` plus any requested intermediate feature maps, unpooled.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, NamedTuple

import torch

from kdcache.devices import resolve_device
from kdcache.errors import KdcacheError
from kdcache.model_input import ResizeRule

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OUTPUT_SPACES = ("disparity", "depth")


class TeacherOutput(NamedTuple):
    """`depth` (B,H,W) float32 in the teacher's output space; `features` {layer: (B,C,h,w)} in the teacher's
    compute dtype (float32, or bf16/fp16 under autocast: no float32 copy of every full-size map is made).

    Both live on the teacher's device, so precompute can pool features there before copying to host.
    """

    depth: torch.Tensor
    features: dict[str, torch.Tensor]


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision actually used: fp16/bf16 autocast on accelerators, fp32 on CPU (autocast there is slower)."""
    if precision not in PRECISIONS:
        raise KdcacheError(f"unknown precision '{precision}': use one of {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision != "fp32":
        from kdcache.console import log

        log(f"[yellow]note:[/] {precision} requested on CPU; the teacher runs in fp32 there")
        return "fp32"
    return precision


class Teacher:
    """Base class: subclasses set the attributes and implement `_run(x, layers) -> (depth (B,h,w), features)`."""

    name: str
    output_space: str | None
    identity: dict
    preprocess: dict
    feature_layers: list[str]
    default_feature_layers: list[str]
    licence: str | None
    params: int | None

    def __init__(self, name: str, device: torch.device, precision: str, rule: ResizeRule | None):
        self.name = name
        self.device = device
        self.precision = precision
        self.rule = rule
        self.preprocess = rule.describe() if rule is not None else {}

    # --- the contract -------------------------------------------------------------------------------
    def predict(self, images: torch.Tensor, layers: Iterable[str] = ()) -> TeacherOutput:
        """Depth (and optional features) for a batch of cache-resolution images in [0,1]."""
        layers = list(layers)
        self._check_layers(layers)
        images = self._check_images(images)
        height, width = images.shape[-2:]
        with torch.no_grad(), self._autocast():  # no_grad, not inference_mode: callers may edit outputs in place
            depth, features = self._run(self.rule(images), layers)
        features = {name: features[name] for name in layers}
        depth = self.rule.resize_back(depth, (height, width), keep_range=self.output_space == "depth")
        return TeacherOutput(depth, features)

    def _run(self, x: torch.Tensor, layers: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    # --- shared helpers -----------------------------------------------------------------------------
    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def _check_layers(self, layers: list[str]) -> None:
        unknown = [layer for layer in layers if layer not in self.feature_layers]
        if unknown:
            known = ", ".join(self.feature_layers) or "none"
            raise KdcacheError(
                f"teacher '{self.name}' has no feature layer {', '.join(map(repr, unknown))}: choose from {known}"
            )

    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"teacher.predict expects (B,3,H,W) float images in [0,1], got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"teacher.predict expects float images in [0,1], got {images.dtype}")
        return images.to(self.device, non_blocking=True)

    def describe(self) -> dict:
        """Everything `kdcache teachers` and the manifest show about this teacher."""
        return {
            "name": self.name,
            "output_space": self.output_space,
            "preprocess": self.preprocess,
            "feature_layers": list(self.feature_layers),
            "default_feature_layers": list(self.default_feature_layers),
            "licence": self.licence,
            "params": self.params,
            "identity": self.identity,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, space={self.output_space}, device={self.device})"


class NoTeacher:
    """`--teacher none`: a store of images and ground truth only.

    It is a real object rather than None so callers can read `identity` / `feature_layers` uniformly;
    `output_space is None` is the signal that no teacher maps are written, and `predict` refuses to run.
    """

    name = "none"
    output_space = None
    preprocess: dict = {}
    feature_layers: list[str] = []
    default_feature_layers: list[str] = []
    licence = None
    params = 0
    precision = "fp32"

    def __init__(self, device: str | torch.device = "cpu", precision: str = "fp32"):
        self.device = resolve_device(device)
        self.identity = {"name": "none"}

    def predict(self, images: torch.Tensor, layers: Iterable[str] = ()) -> TeacherOutput:
        raise KdcacheError("teacher 'none' makes no predictions: pass --teacher NAME to cache teacher maps")

    def describe(self) -> dict:
        return {"name": "none", "output_space": None, "feature_layers": [], "identity": self.identity}

    def __repr__(self) -> str:
        return "NoTeacher()"

"""`DepthStudent`: encoder + decoder + a positive-depth head, for inputs of any size.

Inputs are (B, 3, H, W) floats in [0, 1]; the encoder normalises. H and W need not be multiples of the encoder
stride: the input is edge-padded at the bottom/right to the next multiple and the output cropped back, so pixel
(i, j) of every output (depth and feature maps) stays aligned with pixel (i, j) of the input. Only shape
arithmetic decides anything in `forward`, which keeps it traceable for ONNX.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def inverse_softplus(value: float) -> float:
    """The x with softplus(x) == value (value > 0)."""
    return value + math.log(-math.expm1(-value))


class DepthStudent(nn.Module):
    """Metric depth = softplus(head(decoder(encoder(x)))) + min_depth, at the input resolution."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, config: dict[str, Any],
                 init_depth: float = 2.5, min_depth: float = 1e-3):
        super().__init__()
        if not init_depth > min_depth > 0:
            raise ValueError(f"need init_depth > min_depth > 0, got {init_depth}, {min_depth}")
        self.encoder = encoder
        self.decoder = decoder
        kernel = getattr(decoder, "head_kernel", 1)
        self.head = nn.Conv2d(decoder.out_channels, 1, kernel, padding=kernel // 2)
        # A tiny head and a bias at softplus^-1(init - min): the untrained student predicts ~init_depth metres
        # everywhere, a sane start for silog/log losses (no exploding log of near-zero depths).
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.constant_(self.head.bias, inverse_softplus(init_depth - min_depth))
        self.min_depth = float(min_depth)
        self.config = dict(config)

    @property
    def feature_channels(self) -> list[int]:
        return list(self.encoder.channels)

    @property
    def feature_reductions(self) -> list[int]:
        return list(self.encoder.reductions)

    def _head(self, decoded: torch.Tensor) -> torch.Tensor:
        """The head in float32 even under autocast: its output is near-constant at init (softplus^-1(init) plus
        ~1e-3 variations), which bf16's 8-bit mantissa rounds to one value, so a scale-invariant loss would see a
        flat prediction. One output channel: the cost is nil. (Export traces without autocast: plain path.)"""
        device = decoded.device.type  # "meta" (complexity tables) has no autocast
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self.head(decoded.float())
        return self.head(decoded)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        height, width = x.shape[-2], x.shape[-1]
        multiple = self.encoder.input_multiple
        pad_h = (multiple - height % multiple) % multiple
        pad_w = (multiple - width % multiple) % multiple
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.encoder(padded)
        logits = self._head(self.decoder(features))
        if self.decoder.out_stride > 1:
            logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        depth = F.softplus(logits[..., :height, :width]) + self.min_depth
        if not return_features:
            return depth
        # Each map keeps the cells that see real pixels: ceil(H / stride) x ceil(W / stride).
        cropped = [
            f[..., : (height + r - 1) // r, : (width + r - 1) // r]
            for f, r in zip(features, self.encoder.reductions)
        ]
        return depth, cropped

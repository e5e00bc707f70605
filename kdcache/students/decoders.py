"""The decoder registry and the small conv blocks the decoders share.

A decoder factory is `factory(in_channels, reductions, width=None) -> nn.Module`: it receives the encoder's
feature channels and strides (fine to coarse) and returns a module mapping that list of maps to one feature map
with attributes `out_channels`, `out_stride` (relative to the padded input) and `head_kernel` (the kernel of the
final 1-channel conv that the student adds on top). Everything is shape-static, so ONNX export traces cleanly.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from kdcache.registry import Registry

DECODERS: Registry = Registry("decoder", list_command="kdcache students")
register_decoder = DECODERS.register


def list_decoders() -> list[str]:
    return DECODERS.names()


class ConvBNAct(nn.Sequential):
    """conv -> BatchNorm -> ReLU (ReLU optional); 'same' padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise k x k then pointwise 1 x 1 (MobileNet style): ~k^2 times cheaper than a full conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, act: bool = True):
        super().__init__(
            ConvBNAct(in_channels, in_channels, kernel, groups=in_channels),
            ConvBNAct(in_channels, out_channels, 1, act=act),
        )


def resize_to(x, reference, mode: str = "bilinear"):
    """Resize `x` to the spatial size of `reference` (shape arithmetic only: ONNX-friendly)."""
    if mode == "nearest":
        return F.interpolate(x, size=reference.shape[-2:], mode="nearest")
    return F.interpolate(x, size=reference.shape[-2:], mode=mode, align_corners=False)


def last_levels(in_channels: list[int], count: int) -> list[int]:
    """Indices of the `count` coarsest encoder maps (all of them if the encoder has fewer)."""
    return list(range(max(0, len(in_channels) - count), len(in_channels)))

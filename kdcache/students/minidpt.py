"""`minidpt`: a light DPT-style decoder (Ranftl et al., "Vision Transformers for Dense Prediction").

Like DPT's neck it reassembles the four coarsest encoder maps (strides 4-32) to one common width with 1x1
projections, then fuses top-down: each fusion block adds a residual-conv-refined skip to the upsampled coarser
result and refines again. To stay light, the residual conv units use depthwise-separable 3x3 convs, and the
head ends at stride 2 (the student upsamples the 1-channel logits bilinearly to the input size).
"""

from __future__ import annotations

import torch
from torch import nn

from kdcache.students.decoders import ConvBNAct, SeparableConv, last_levels, register_decoder, resize_to


class ResidualConvUnit(nn.Module):
    """DPT's RCU: x + conv(relu(conv(relu(x)))), here with separable convs."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            SeparableConv(width, width, 3),
            SeparableConv(width, width, 3, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FusionBlock(nn.Module):
    """DPT's feature fusion: refine(coarser_upsampled + rcu(skip)); the coarsest level has no coarser input."""

    def __init__(self, width: int):
        super().__init__()
        self.skip_unit = ResidualConvUnit(width)
        self.out_unit = ResidualConvUnit(width)

    def forward(self, skip: torch.Tensor, coarser: torch.Tensor | None) -> torch.Tensor:
        x = self.skip_unit(skip)
        if coarser is not None:
            x = x + resize_to(coarser, skip)
        return self.out_unit(x)


class MiniDPT(nn.Module):
    def __init__(self, in_channels: list[int], reductions: list[int], width: int = 64, levels: int = 4):
        super().__init__()
        self.levels = last_levels(in_channels, levels)
        self.project = nn.ModuleList(ConvBNAct(in_channels[i], width, 1, act=False) for i in self.levels)
        self.fuse = nn.ModuleList(FusionBlock(width) for _ in self.levels)
        half = max(width // 2, 8)
        self.refine = SeparableConv(width, half, 3)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.out_conv = ConvBNAct(half, 16, 3)
        self.out_channels = 16
        self.out_stride = reductions[self.levels[0]] // 2
        self.head_kernel = 1

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        projected = [proj(features[i]) for proj, i in zip(self.project, self.levels)]
        x = None
        for level in reversed(range(len(projected))):
            x = self.fuse[level](projected[level], x)
        return self.out_conv(self.upsample(self.refine(x)))


@register_decoder("minidpt", description="light DPT: 1x1 reassemble, top-down fusion with separable residual units")
def minidpt(in_channels: list[int], reductions: list[int], width: int | None = None) -> MiniDPT:
    return MiniDPT(in_channels, reductions, width=width or 64)

"""`hu`: the multi-scale feature-fusion decoder of Hu et al.'s light-weight student.

Hu et al. ("Boosting Light-Weight Depth Estimation via Knowledge Distillation"; MFF from "Revisiting Single
Image Depth Estimation") reweight each of the four coarsest encoder maps with squeeze-and-excitation channel
attention, lift each to `width` channels with a 5x5 conv ("up-projection") and upsample it bilinearly to
stride 2, concatenate (4 * width), fuse with a 5x5 conv, refine with another 5x5 conv; a 5x5 conv predicts
depth at stride 2. With MobileNetV2 cut after its 160-channel stage this is their 1.7 M-parameter student.
"""

from __future__ import annotations

import torch
from torch import nn

from kdcache.students.decoders import ConvBNAct, last_levels, register_decoder


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation gate: x * sigmoid(W2 relu(W1 avgpool(x))), bottleneck C // 16 as in Hu et al."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class HuMFF(nn.Module):
    def __init__(self, in_channels: list[int], reductions: list[int], width: int = 16, levels: int = 4):
        super().__init__()
        self.levels = last_levels(in_channels, levels)
        self.attention = nn.ModuleList(ChannelAttention(in_channels[i]) for i in self.levels)
        self.lift = nn.ModuleList(ConvBNAct(in_channels[i], width, 5) for i in self.levels)
        fused = width * len(self.levels)
        self.fuse = ConvBNAct(fused, fused, 5)
        self.refine = ConvBNAct(fused, fused, 5)
        self.out_channels = fused
        self.out_stride = reductions[self.levels[0]] // 2
        self.head_kernel = 5

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        finest = features[self.levels[0]]
        size = (finest.shape[-2] * 2, finest.shape[-1] * 2)
        lifted = [
            nn.functional.interpolate(lift(att(features[i])), size=size, mode="bilinear", align_corners=False)
            for att, lift, i in zip(self.attention, self.lift, self.levels)
        ]
        return self.refine(self.fuse(torch.cat(lifted, dim=1)))


@register_decoder("hu", description="Hu et al. multi-scale feature fusion (SE gates, 5x5 up-projections, concat)")
def hu(in_channels: list[int], reductions: list[int], width: int | None = None) -> HuMFF:
    return HuMFF(in_channels, reductions, width=width or 16)

"""`nnconv5`: FastDepth's decoder (Wofk et al., "FastDepth: Fast Monocular Depth Estimation on Embedded Systems").

Five NNConv stages from the coarsest (stride 32) map to full resolution; each is a depthwise-separable 5x5 conv
followed by nearest-neighbour 2x upsampling, and the encoder map of the same stride is added (additive skips,
1x1-projected when widths differ). Widths halve per stage: 8w, 4w, 2w, w, w/2 (FastDepth: 512 ... 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdcache.students.decoders import ConvBNAct, SeparableConv, register_decoder, resize_to


class NNConv5(nn.Module):
    def __init__(self, in_channels: list[int], reductions: list[int], width: int = 32):
        super().__init__()
        widths = [width * 8, width * 4, width * 2, width, max(width // 2, 8)]
        stride = reductions[-1]
        self.stages = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.skip_index: list[int] = []
        previous = in_channels[-1]
        for out in widths:
            stride //= 2
            self.stages.append(SeparableConv(previous, out, 5))
            # The encoder map at the stride this stage upsamples to, if there is one.
            match = [i for i, r in enumerate(reductions[:-1]) if r == stride]
            index = match[-1] if match else -1
            self.skip_index.append(index)
            if index < 0:
                self.skips.append(nn.Identity())
            elif in_channels[index] == out:
                self.skips.append(nn.Identity())
            else:
                self.skips.append(ConvBNAct(in_channels[index], out, 1, act=False))
            previous = out
        self.out_channels = previous
        self.out_stride = max(stride, 1)
        self.head_kernel = 1

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, skip, index in zip(self.stages, self.skips, self.skip_index):
            x = stage(x)
            if index >= 0:
                x = resize_to(x, features[index], mode="nearest") + skip(features[index])
            else:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x


@register_decoder("nnconv5", description="FastDepth: 5 separable-conv + nearest-upsample stages, additive skips")
def nnconv5(in_channels: list[int], reductions: list[int], width: int | None = None) -> NNConv5:
    return NNConv5(in_channels, reductions, width=width or 32)

"""Feature distillation against the pooled teacher features stored in the cache.

`feature` — FitNets-style hint loss with learned 1x1 conv adapters (student channels -> teacher channels), one
per paired layer; the adapters are parameters of the objective and train with the student. The student map is
average-pooled onto the teacher's grid first (pooling and a 1x1 conv commute, so this is exact and cheap). The
loss is 1 - cosine similarity between adapted-student and teacher feature vectors at each grid cell, averaged
over cells, layers and images with a valid teacher: normalised features, as in Depth Anything's feature
alignment, so a layer's loss does not depend on the magnitude of its activations.

`attention` — attention transfer (Zagoruyko & Komodakis 2017): a map's attention is the channel mean of |f|^p
(p = 2), flattened and L2-normalised per image; the loss is the mean squared difference between student and
teacher attention (their reference code's `(at(x) - at(y)).pow(2).mean()`), the student's attention pooled to
the teacher grid. No parameters: the channel counts need not match.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from kdcache.errors import KdcacheError
from kdcache.losses.masking import require, sample_mask, zero_like_graph
from kdcache.losses.pairing import module_key, pair_layers
from kdcache.losses.loss_registry import register_loss

_FIX = "precompute the cache with --features and keep them in the batch, or drop this loss"


def _student_maps(pred: dict, loss: str) -> list[torch.Tensor]:
    return require(pred, "features", loss, "call the student with return_features=True")


def _teacher_map(target: dict, layer: str, loss: str, like: torch.Tensor) -> torch.Tensor:
    features = require(target, "features", loss, _FIX)
    if layer not in features:
        raise KdcacheError(f"loss '{loss}' needs teacher feature '{layer}', which this batch lacks "
                           f"(has: {', '.join(features) or 'none'}): {_FIX}.")
    teacher = features[layer].to(like.device).float()
    # Zero the maps of excluded samples and any non-finite value *before* use: a NaN there would otherwise
    # reach the adapters' gradients through 0 * NaN.
    usable = torch.isfinite(teacher) & sample_mask(target.get("teacher_ok"), teacher)
    return torch.where(usable, teacher, torch.zeros_like(teacher))


def _sample_weights(target: dict, like: torch.Tensor) -> torch.Tensor:
    return sample_mask(target.get("teacher_ok"), like).view(-1).to(torch.float32)


def _mean_over_ok_samples(per_sample: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (per_sample * weights).sum() / weights.sum().clamp_min(1.0)


@register_loss("feature", targets=("features",))
class FeatureLoss(nn.Module):
    def __init__(self, student_channels: Sequence[int] | None = None,
                 teacher_channels: Mapping[str, int] | None = None, pairs: Mapping[str, int] | None = None):
        super().__init__()
        self.pairs = pair_layers(student_channels, teacher_channels, "feature", pairs)
        self.adapters = nn.ModuleDict({
            module_key(layer): nn.Conv2d(student_channels[index], teacher_channels[layer], 1)
            for layer, index in self.pairs.items()
        })

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        maps = _student_maps(pred, "feature")
        anchor = zero_like_graph(pred["depth"]) + sum(zero_like_graph(p) for p in self.adapters.parameters())
        total = anchor
        for layer, index in self.pairs.items():
            student = maps[index].float()
            teacher = _teacher_map(target, layer, "feature", student)
            pooled = F.adaptive_avg_pool2d(student, teacher.shape[-2:])
            adapted = self.adapters[module_key(layer)](pooled)
            per_sample = (1.0 - F.cosine_similarity(adapted, teacher, dim=1, eps=1e-6)).flatten(1).mean(1)
            total = total + _mean_over_ok_samples(per_sample, _sample_weights(target, student))
        return total / len(self.pairs)


def attention_map(features: torch.Tensor, grid: tuple[int, int], power: float) -> torch.Tensor:
    """(B, h*w) L2-normalised spatial attention sum_c |f|^p / C, pooled to `grid`."""
    attention = features.abs().pow(power).mean(dim=1, keepdim=True)
    attention = F.adaptive_avg_pool2d(attention, grid)
    return F.normalize(attention.flatten(1), dim=1)


@register_loss("attention", targets=("features",))
class AttentionTransferLoss(nn.Module):
    def __init__(self, student_channels: Sequence[int] | None = None,
                 teacher_channels: Mapping[str, int] | None = None, pairs: Mapping[str, int] | None = None,
                 power: float = 2.0):
        super().__init__()
        self.pairs = pair_layers(student_channels, teacher_channels, "attention", pairs)
        self.power = float(power)

    def forward(self, pred: dict, target: dict) -> torch.Tensor:
        maps = _student_maps(pred, "attention")
        total = zero_like_graph(pred["depth"])
        for layer, index in self.pairs.items():
            student = maps[index].float()
            teacher = _teacher_map(target, layer, "attention", student)
            grid = tuple(teacher.shape[-2:])
            diff = attention_map(student, grid, self.power) - attention_map(teacher, grid, self.power)
            total = total + _mean_over_ok_samples(diff.pow(2).mean(1), _sample_weights(target, student))
        return total / len(self.pairs)

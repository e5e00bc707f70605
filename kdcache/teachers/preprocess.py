"""How a teacher turns cache-resolution images into its own input: resize rule, filter, normalisation.

Everything runs in torch on whatever device the images are on (no PIL round-trip), so precompute can
batch the teacher on a GPU. The rule is also recorded in the cache manifest (`ResizeRule.describe()`),
because the same weights give different maps under a different input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kdcache.errors import KdcacheError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN_STD = (0.5, 0.5, 0.5)

# "square": always SIZExSIZE (DPT's ViT path reshapes tokens as a square grid).
# "short-side": short side SIZE, long side keeps the aspect, both rounded to a multiple (Depth Anything's
#   `lower_bound` rule: never below SIZE, so 518 stays 518).
# "native": the image as it comes (students take any H, W), rounded to a multiple when one is set.
SIZE_RULES = ("square", "short-side", "native")
FILTERS = ("bilinear", "bicubic")


@dataclass(frozen=True)
class ResizeRule:
    rule: str
    size: int | None
    multiple: int = 1
    filter: str = "bilinear"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self):
        if self.rule not in SIZE_RULES:
            raise ValueError(f"unknown size rule {self.rule!r}; expected one of {SIZE_RULES}")
        if self.filter not in FILTERS:
            raise ValueError(f"unknown resize filter {self.filter!r}; expected one of {FILTERS}")
        if self.rule != "native" and (self.size is None or self.size <= 0):
            raise KdcacheError(
                f"teacher input size must be a positive integer, got {self.size}: pass e.g. input_size=384"
            )
        if self.size is not None and self.size % self.multiple:
            raise KdcacheError(
                f"teacher input size {self.size} is not a multiple of the patch size {self.multiple}: "
                f"pass input_size={_round_to(self.size, self.multiple)}"
            )

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the model sees for a (height, width) image."""
        if self.rule == "square":
            return self.size, self.size
        if self.rule == "native":
            return _round_to(height, self.multiple), _round_to(width, self.multiple)
        scale = self.size / min(height, width)
        return (
            _round_up_from(height * scale, self.multiple, self.size),
            _round_up_from(width * scale, self.multiple, self.size),
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> resized and normalised model input (float32)."""
        height, width = images.shape[-2:]
        target = self.input_size(height, width)
        x = images.float()
        if target != (height, width):
            # antialias only matters when shrinking; it mirrors PIL's area-aware downscaling in HF processors.
            x = F.interpolate(x, size=target, mode=self.filter, align_corners=False, antialias=True)
            if self.filter == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots; HF's uint8 PIL path clips the same way
        if self.mean is not None:
            mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    def describe(self) -> dict:
        """JSON-able summary for the manifest and `kdcache teachers`."""
        return {
            "size_rule": self.rule,
            "size": self.size,
            "multiple_of": self.multiple,
            "resize_filter": self.filter,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
        }

    def summary(self) -> str:
        """One short human line, e.g. `384x384 bilinear` or `short side 518 /14 bicubic`."""
        if self.rule == "square":
            return f"{self.size}x{self.size} {self.filter}"
        if self.rule == "short-side":
            return f"short side {self.size}, x{self.multiple}, {self.filter}"
        return "native size" + (f", x{self.multiple}" if self.multiple > 1 else "")


def resize_back(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,h,w) model output -> (B,H,W) float32 at the cache resolution (bilinear, align_corners=False)."""
    maps = maps.float()
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _round_up_from(value: float, multiple: int, minimum: int) -> int:
    """Depth Anything's `constrain_to_multiple_of(value, min_val=minimum)`: nearest multiple, never below minimum."""
    rounded = int(round(value / multiple)) * multiple
    if rounded < minimum:
        rounded = math.ceil(value / multiple) * multiple
    return rounded

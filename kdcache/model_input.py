"""How an image becomes a model's input: the one preprocessing path of every predictor and teacher.

A `ResizeRule` takes (B,3,H,W) float images in [0,1] (`to_tensor` of a uint8 RGB frame) to what a model is fed:
the size rule, the resize filter (always antialiased, as PIL and HF's processors shrink area-aware), an optional
rounding to 8 bits (HF processors resize the uint8 image) and the normalisation. `resize_back` brings the
model's map to the image's size with the rule's output filter. Students (run dir, checkpoint, `.onnx`) use a
`fixed` rule at their training size with normalisation inside the model; the `.onnx` carries that rule in its
metadata (`onnx_rule`). Teachers' rules are recorded in the cache manifest (`describe()`), because the same
weights give different maps under a different input size or filter.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from kdcache.errors import KdcacheError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN_STD = (0.5, 0.5, 0.5)

# "fixed": always HxW (students at their training size; DPT's processor without keep_aspect_ratio).
# "keep-aspect": HF's `keep_aspect_ratio` rule (DPTImageProcessor, used by Depth Anything V2's processor): scale
#   both sides by the factor of HxW's side that is closest to 1, each rounded to the nearest multiple.
# "short-side": short side SIZE, long side keeps the aspect, both rounded to a multiple (Depth Anything's
#   original `lower_bound` rule: never below SIZE, so 518 stays 518).
# "native": the image as it comes (students take any H, W), rounded to a multiple when one is set.
SIZE_RULES = ("fixed", "keep-aspect", "short-side", "native")
FILTERS = ("bilinear", "bicubic")
_META_SIZE_KEYS = ("input_size", "resolution", "eval_size")


@dataclass(frozen=True)
class ResizeRule:
    rule: str
    size: tuple[int, int] | None
    multiple: int = 1
    filter: str = "bilinear"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    uint8: bool = False  # round the resized image to 8 bits, as a processor resizing the uint8 image does
    output_filter: str = "bilinear"  # how the model's map is brought back to the image size

    def __post_init__(self):
        if self.rule not in SIZE_RULES:
            raise ValueError(f"unknown size rule {self.rule!r}; expected one of {SIZE_RULES}")
        if self.filter not in FILTERS or self.output_filter not in FILTERS:
            raise ValueError(f"unknown resize filter {self.filter!r}/{self.output_filter!r}; expected {FILTERS}")
        if self.rule == "native":
            return
        if self.size is None or len(self.size) != 2 or min(self.size) <= 0:
            raise KdcacheError(f"model input size must be two positive integers, got {self.size}: pass e.g. 384")
        bad = [side for side in self.size if side % self.multiple]
        if bad:
            raise KdcacheError(f"model input size {bad[0]} is not a multiple of the patch size {self.multiple}: "
                               f"pass input_size={_round_to(bad[0], self.multiple)}")

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) the model sees for a (height, width) image."""
        if self.rule == "fixed":
            return tuple(self.size)
        if self.rule == "native":
            return _round_to(height, self.multiple), _round_to(width, self.multiple)
        if self.rule == "keep-aspect":
            scale_h, scale_w = self.size[0] / height, self.size[1] / width
            scale = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h  # scale as little as possible
            return _round_to(height * scale, self.multiple), _round_to(width * scale, self.multiple)
        scale = self.size[0] / min(height, width)
        return (_round_up_from(height * scale, self.multiple, self.size[0]),
                _round_up_from(width * scale, self.multiple, self.size[0]))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] -> resized and normalised model input (float32)."""
        height, width = images.shape[-2:]
        target = self.input_size(height, width)
        x = images.float()
        if target != (height, width) and self.uint8:
            x = _resize_uint8(x, target, self.filter)
        elif target != (height, width):
            # antialias only matters when shrinking; it is PIL's (and HF processors') area-aware downscaling, and
            # with bicubic it selects PIL's kernel (a = -0.5).
            x = F.interpolate(x, size=target, mode=self.filter, align_corners=False, antialias=True)
            if self.filter == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots; a uint8 image saturates the same way
        if self.mean is not None:
            mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    def resize_back(self, maps: torch.Tensor, size: tuple[int, int], keep_range: bool = False) -> torch.Tensor:
        """(B,h,w) model output -> (B,H,W) float32 at the image size (align_corners=False, no antialias: HF's
        `post_process_depth_estimation`). `keep_range` clamps bicubic's overshoot to each map's range, so that
        metric depth stays positive (a relative map is left exactly as HF's pipeline gives it)."""
        maps = maps.float()
        if tuple(maps.shape[-2:]) == tuple(size):
            return maps
        out = F.interpolate(maps[:, None], size=tuple(size), mode=self.output_filter, align_corners=False)[:, 0]
        if keep_range and self.output_filter == "bicubic":
            low, high = maps.flatten(1).aminmax(dim=1)
            out = torch.maximum(torch.minimum(out, high.view(-1, 1, 1)), low.view(-1, 1, 1))
        return out

    def describe(self) -> dict:
        """JSON-able summary for the manifest, the `.onnx` metadata and `kdcache teachers`."""
        described = {
            "size_rule": self.rule,
            "size": list(self.size) if self.size is not None else None,
            "multiple_of": self.multiple,
            "resize_filter": self.filter,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
        }
        # Later fields only when set, so rules that do not use them keep their recorded identity.
        if self.uint8:
            described["uint8"] = True
        if self.output_filter != "bilinear":
            described["output_filter"] = self.output_filter
        return described

    @classmethod
    def from_description(cls, described: dict) -> "ResizeRule":
        """The rule `describe()` recorded (an `.onnx`'s metadata); a malformed one is a one-line error."""
        try:
            size = described.get("size")
            return cls(described["size_rule"], tuple(int(v) for v in size) if size else None,
                       int(described.get("multiple_of", 1)), described.get("resize_filter", "bilinear"),
                       _triple(described.get("mean")), _triple(described.get("std")),
                       bool(described.get("uint8", False)), described.get("output_filter", "bilinear"))
        except (KeyError, TypeError, ValueError) as err:
            raise KdcacheError(f"unreadable preprocessing record {described!r} ({err}): re-export the model "
                               f"with kdcache export") from None

    def summary(self) -> str:
        """One short human line, e.g. `384x384 bilinear` or `keep aspect 518x518, x14, bicubic`."""
        if self.rule == "fixed":
            return f"{self.size[0]}x{self.size[1]} {self.filter}"
        if self.rule == "keep-aspect":
            return f"keep aspect {self.size[0]}x{self.size[1]}, x{self.multiple}, {self.filter}"
        if self.rule == "short-side":
            return f"short side {self.size[0]}, x{self.multiple}, {self.filter}"
        return "native size" + (f", x{self.multiple}" if self.multiple > 1 else "")


def as_output_space(depth: torch.Tensor, space: str) -> torch.Tensor:
    """A student's (B, h, w) output in its `space`: a "disparity" student's output is only meaningful through its
    inverse (architecture.md §5), clamped away from 0 first so that disparity never becomes inf."""
    return 1.0 / depth.clamp_min(1e-6) if space == "disparity" else depth


def student_rule(size: tuple[int, int] | None) -> ResizeRule:
    """A student's input: its training size (bilinear, antialiased: the cache's PIL resize), or the image as it
    comes when the size is unknown; normalisation and padding happen inside the model (and its `.onnx`)."""
    return ResizeRule("fixed", tuple(size)) if size else ResizeRule("native", None)


def size_from_meta(meta: dict) -> tuple[int, int] | None:
    """The (H, W) a student was trained at, from its checkpoint meta (None if it does not say)."""
    for source in (meta, meta.get("config") or {}):
        for key in _META_SIZE_KEYS:
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, (list, tuple)) and len(value) == 2:
                return int(value[0]), int(value[1])
    return None


def onnx_metadata(rule: ResizeRule) -> dict[str, str]:
    """What an exported `.onnx` carries so that every reader feeds it as PyTorch was fed."""
    size = f"{rule.size[0]}x{rule.size[1]}" if rule.size else ""
    return {"input_size": size, "preprocess": json.dumps(rule.describe())}


def onnx_rule(props: dict[str, str]) -> ResizeRule:
    """The rule an `.onnx` records: its `preprocess`, else (files of earlier kdcache) its `input_size`."""
    if props.get("preprocess"):
        try:
            return ResizeRule.from_description(json.loads(props["preprocess"]))
        except json.JSONDecodeError:
            raise KdcacheError("the .onnx file's preprocess metadata is not JSON: re-export it with kdcache "
                               "export") from None
    size = props.get("input_size") or ""
    parts = size.split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return student_rule((int(parts[0]), int(parts[1])))
    return student_rule(None)


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].to(device).float().div_(255.0)


def _resize_uint8(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Resize as HF's (torchvision) processors resize a uint8 image: torch's native uint8 kernel on a CPU (bicubic
    always, bilinear with AVX2/AVX512 or on ARM), else in float, clamped and rounded; back to [0, 1]."""
    pixels = torch.round(x.clamp(0.0, 1.0) * 255.0)
    if x.device.type == "cpu" and (mode == "bicubic" or _native_uint8_bilinear()):
        out = F.interpolate(pixels.to(torch.uint8), size=size, mode=mode, align_corners=False, antialias=True)
    else:
        out = F.interpolate(pixels, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 255).round()
    return out.float() / 255.0


def _native_uint8_bilinear() -> bool:
    import platform

    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")


def _triple(values) -> tuple[float, float, float] | None:
    return tuple(float(v) for v in values) if values is not None else None


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _round_up_from(value: float, multiple: int, minimum: int) -> int:
    """Depth Anything's `constrain_to_multiple_of(value, min_val=minimum)`: nearest multiple, never below minimum."""
    rounded = int(round(value / multiple)) * multiple
    if rounded < minimum:
        rounded = math.ceil(value / multiple) * multiple
    return rounded

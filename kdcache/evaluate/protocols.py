"""Evaluation protocols: a registry of the literature's exact recipes, each following published evaluation code
(cited where it is implemented; docs/evaluation.md lists them side by side).

A protocol decides what the model sees (`prepare`) and how its raw output is turned into a score
(`score`: upsampling rule, crop, depth range, clamping or per-image alignment). Every result row names
its protocol, and `resolve_protocol` guarantees that relative-depth models and disparity ground truth
are never scored with a metric protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kdcache.errors import KdcacheError
from kdcache.evaluate.context import DatasetContext, crop_mask
from kdcache.metrics import NoValidPixels, depth_metrics
from kdcache.registry import Registry
from kdcache.scale_shift import fit_scale_shift

PROTOCOLS: Registry = Registry("protocol", list_command="kdcache eval --list-protocols")


@dataclass
class Prepared:
    """One sample as a protocol evaluates it: the model's input image and the GT it is scored against.

    `input_key` names the input geometry so that protocols sharing it share one forward pass.
    """

    image: np.ndarray  # (H, W, 3) uint8
    gt: np.ndarray  # (h, w) float32, metres or disparity
    valid: np.ndarray  # (h, w) bool
    input_key: str = "full"
    offset: tuple[int, int] | None = None  # where the model's input window sits in the GT frame (KB crop)


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    model_spaces: tuple[str, ...]  # output spaces it can score ("depth", "disparity")
    gt_spaces: tuple[str, ...]  # GT spaces it can score
    scorer: Callable[..., dict]
    preparer: Callable[..., Prepared] | None = None
    reference_flip_tta: bool = False  # the code it follows averages with the flipped prediction (--flip-tta)

    def prepare(self, sample, context: DatasetContext | None = None) -> Prepared:
        if self.preparer is not None:
            return self.preparer(sample, context)
        return full_frame(sample)

    def score(self, pred: np.ndarray, model_space: str, prepared: Prepared, context: DatasetContext,
              gt_space: str = "depth") -> dict:
        """Metrics of one image; `pred` is the model's (h, w) output in `model_space` at its own resolution."""
        if model_space not in self.model_spaces:
            raise KdcacheError(f"protocol '{self.name}' cannot score a {model_space} model: use aligned-disparity")
        if gt_space not in self.gt_spaces:
            raise KdcacheError(f"protocol '{self.name}' cannot score {gt_space} ground truth: use aligned-disparity")
        return self.scorer(pred, model_space, prepared, context, gt_space)


def register_protocol(name: str, **info):
    """Decorator for a zero-argument factory returning a `Protocol`."""
    return PROTOCOLS.register(name, **info)


def create_protocol(name: str) -> Protocol:
    return PROTOCOLS.create(name)


def list_protocols() -> list[str]:
    return PROTOCOLS.names()


def full_frame(sample) -> Prepared:
    valid = sample.valid if sample.valid is not None else np.ones(sample.depth.shape, bool)
    return Prepared(sample.image, np.asarray(sample.depth, np.float32), valid.astype(bool))


def upsample(pred, shape: tuple[int, int], align_corners: bool) -> np.ndarray:
    """Bilinear resize of one (h, w) map to `shape` in float32 (no-op when sizes match)."""
    tensor = torch.as_tensor(np.asarray(pred, dtype=np.float32))[None, None]
    if tuple(tensor.shape[-2:]) != tuple(shape):
        tensor = F.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=align_corners)
    return tensor[0, 0].numpy()


def clamp_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """ZoeDepth's rule: below/above range -> the bound, inf -> max, nan -> min."""
    out = np.clip(depth, lo, hi)
    out[np.isposinf(depth)] = hi
    out[np.isnan(depth)] = lo
    return out


# ---------------------------------------------------------------- metric (BTS) and metric-zoedepth
# The two agree on NYU (Eigen crop 45:471, 41:601 of the 480x640 GT) and differ on KITTI. Both feed the model the
# KB crop, the bottom-centre 352x1216 window (top = H - 352, left = int((W - 1216) / 2)), then:
# - BTS (pytorch/bts_eval.py) pastes the prediction into a zero full frame and takes the Garg crop as fractions of
#   the full GT: rows 153:371, cols 44:1197 of a 375x1242 frame;
# - ZoeDepth (zoedepth/data/data_mono.py, `do_kb_crop` in online_eval) crops the GT to the window too, and
#   zoedepth/utils/misc.py compute_metrics takes the Garg fractions of that 352x1216 GT: rows 143:349, cols 43:1172
#   of the window, i.e. rows 166:372, cols 56:1185 of a 375x1242 frame.

_KB_CROP = (352, 1216)


def _kb_corner(shape: tuple[int, int]) -> tuple[int, int] | None:
    height, width = shape
    if height < _KB_CROP[0] or width < _KB_CROP[1]:
        return None
    return height - _KB_CROP[0], (width - _KB_CROP[1]) // 2


def _prepare_kb(sample, context: DatasetContext | None, crop_gt: bool) -> Prepared:
    """Full frame; on KITTI the model sees the KB crop, and the GT is either kept whole (BTS) or cropped (ZoeDepth)."""
    view = full_frame(sample)
    corner = _kb_corner(sample.image.shape[:2]) if context is not None and context.kind == "kitti" else None
    if corner is None:
        return view
    (top, left), (h, w) = corner, _KB_CROP
    view.image, view.input_key = sample.image[top:top + h, left:left + w], "kb-crop"
    if crop_gt:
        view.gt, view.valid = view.gt[top:top + h, left:left + w], view.valid[top:top + h, left:left + w]
    else:
        view.offset = (top, left)
    return view


def _prepare_metric(sample, context: DatasetContext | None) -> Prepared:
    return _prepare_kb(sample, context, crop_gt=False)


def _prepare_metric_zoedepth(sample, context: DatasetContext | None) -> Prepared:
    return _prepare_kb(sample, context, crop_gt=True)


def _to_gt_frame(pred, prepared: Prepared, align_corners: bool) -> np.ndarray:
    """The prediction on the GT grid; a cropped input is pasted back into a zero canvas as BTS does."""
    if prepared.offset is None:
        return upsample(pred, prepared.gt.shape, align_corners)
    canvas = np.zeros(prepared.gt.shape, np.float32)
    (top, left), (h, w) = prepared.offset, prepared.image.shape[:2]
    canvas[top:top + h, left:left + w] = upsample(pred, (h, w), align_corners)
    return canvas


def _score_metric(pred, model_space, prepared, context, gt_space):
    # The crop is taken as fractions of the GT this protocol scores: the full frame (BTS) or the KB crop (ZoeDepth).
    gt = prepared.gt
    depth = clamp_depth(_to_gt_frame(pred, prepared, align_corners=True), context.min_depth, context.max_depth)
    mask = prepared.valid & (gt > context.min_depth) & (gt < context.max_depth) & crop_mask(context.crop, gt.shape)
    return depth_metrics(depth, gt, mask)


_METRIC_COMMON = ("valid min<g<max (1e-3..10 m NYU, 80 m KITTI), bilinear upsampling align_corners=True, "
                  "clamp to [min, max] (inf->max, nan->min), per-image metrics averaged, δ strict <")


@register_protocol("metric")
def metric() -> Protocol:
    return Protocol(
        "metric",
        "BTS metric depth (bts_eval.py; on NYU also ZoeDepth's): full-resolution GT, Eigen crop (NYU) / "
        "KITTI: model input = KB crop 352x1216 pasted back into the full frame, Garg crop of the full frame "
        "(rows 153:371, cols 44:1197 at 375x1242) / no crop (synth); " + _METRIC_COMMON,
        ("depth",), ("depth",), _score_metric, _prepare_metric,
    )


@register_protocol("metric-zoedepth")
def metric_zoedepth() -> Protocol:
    return Protocol(
        "metric-zoedepth",
        "ZoeDepth's evaluate.py convention: as metric, except on KITTI the GT is cropped to the 352x1216 KB window "
        "with the image and the Garg crop is taken of that (rows 166:372, cols 56:1185 at 375x1242); identical to "
        "metric on NYU. ZoeDepth averages every prediction with its mirror: add --flip-tta to match its numbers; "
        + _METRIC_COMMON,
        ("depth",), ("depth",), _score_metric, _prepare_metric_zoedepth, reference_flip_tta=True,
    )


# ---------------------------------------------------------------- Hu et al.
# The test path of github.com/JunjH/Boosting-Light-Weight-Depth-Estimation: loaddata_nyu.getTestingData applies
# nyu_transform.Scale(240) (640x480 -> 320x240: the RGB with PIL BILINEAR, the 16-bit depth PNG with PIL NEAREST)
# and CenterCrop([304, 228]) to both; models/net.py upsamples the output to 228x304 (bilinear, align_corners=True);
# models/test.py scores the pixels where depth > 0 with models/util.py evaluateError (per image, δ with <=).

_HU_RESIZED, _HU_CROP = (240, 320), (228, 304)  # (height, width)


def _hu_window() -> tuple[slice, slice]:
    """nyu_transform.CenterCrop: x1 = int(round((w1 - tw) / 2.)), y1 likewise -> rows 6:234, cols 8:312."""
    (h, w), (ch, cw) = _HU_RESIZED, _HU_CROP
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    return slice(top, top + ch), slice(left, left + cw)


@lru_cache(maxsize=4)
def pil_nearest_indices(shape: tuple[int, int], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the source pixels PIL's NEAREST resize of a 16-bit image `shape` -> `size` (H, W) takes.

    PIL samples at pixel centres (640 -> 320 takes columns 1, 3, 5, ...), torch's `nearest` at left edges
    (0, 2, 4, ...). Asking PIL itself, on row- and column-index images in the depth PNG's own mode (I;16),
    reproduces its rounding at any ratio; nearest neighbour only selects pixels, so the selection applies to
    metres and to the valid mask alike.
    """
    (h, w), pil_size = shape, (size[1], size[0])
    rows = np.repeat(np.arange(h, dtype=np.uint16)[:, None], w, axis=1)
    cols = np.repeat(np.arange(w, dtype=np.uint16)[None, :], h, axis=0)
    taken_rows = np.asarray(Image.fromarray(rows).resize(pil_size, Image.NEAREST))[:, 0]
    taken_cols = np.asarray(Image.fromarray(cols).resize(pil_size, Image.NEAREST))[0, :]
    return taken_rows.astype(np.intp), taken_cols.astype(np.intp)


def _prepare_hu(sample, context: DatasetContext | None = None) -> Prepared:
    if sample.image.shape[:2] != (480, 640):
        raise KdcacheError(f"the hu protocol is defined on 640x480 NYU frames, got {sample.image.shape[1]}x"
                           f"{sample.image.shape[0]}: use --protocol metric")
    rows, cols = _hu_window()
    image = Image.fromarray(sample.image).resize(_HU_RESIZED[::-1], Image.BILINEAR)
    # Holes (and anything the reader marked invalid) are 0, as in their PNGs, so that `g > 0` masks them.
    valid = sample.valid if sample.valid is not None else np.ones(sample.depth.shape, bool)
    gt = np.where(valid, sample.depth, 0).astype(np.float32)
    taken_rows, taken_cols = pil_nearest_indices(gt.shape, _HU_RESIZED)
    gt_small = gt[np.ix_(taken_rows, taken_cols)][rows, cols]
    return Prepared(np.asarray(image)[rows, cols], gt_small, gt_small > 0, input_key="hu-228x304")


def _score_hu(pred, model_space, prepared, context, gt_space):
    # models/net.py's last step; no range cap, no crop. Only kdcache floors predictions at 1e-3 (nan -> 1e-3) so
    # that the log metrics stay finite, where their code would return nan for a prediction <= 0.
    depth = upsample(pred, prepared.gt.shape, align_corners=True)
    depth = np.nan_to_num(depth, nan=1e-3, posinf=np.finfo(np.float32).max)
    return depth_metrics(np.maximum(depth, 1e-3), prepared.gt, prepared.gt > 0, delta_inclusive=True)


@register_protocol("hu")
def hu() -> Protocol:
    return Protocol(
        "hu",
        "Hu et al. (light-weight KD; their loaddata_nyu.py / nyu_transform.py / test.py): 640x480 -> 320x240, "
        "the image with PIL bilinear, the GT with PIL nearest (pixel-centre sampling), centre crop 304x228 of both; "
        "metrics at 228x304 with mask g > 0, no cap, no Eigen crop, prediction upsampled bilinear "
        "align_corners=True (their net.py); δ uses <= (their util.py, not the strict < of BTS/ZoeDepth)",
        ("depth",), ("depth",), _score_hu, _prepare_hu,
    )


# ---------------------------------------------------------------- aligned (MiDaS / DPT zero-shot)


def _fit(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """`kdcache.scale_shift.fit_scale_shift` of one (H, W) image, the same fit as training's validation."""
    if not mask.any():
        raise NoValidPixels("no valid pixel to align the prediction on: check the ground truth's valid mask")
    scale, shift = fit_scale_shift(*(torch.from_numpy(np.asarray(a))[None] for a in (pred, target, mask)))
    return float(scale), float(shift)


def _score_aligned_disparity(pred, model_space, prepared, context, gt_space):
    pred = upsample(pred, prepared.gt.shape, align_corners=False).astype(np.float64)
    disparity = pred if model_space == "disparity" else 1.0 / np.maximum(pred, 1e-12)
    gt = prepared.gt.astype(np.float64)
    if gt_space == "disparity":
        # Relative GT (HR-WSI): align to it and score in disparity space, as Depth Anything reports.
        mask = prepared.valid & (gt > 0) & np.isfinite(disparity)
        scale, shift = _fit(disparity, gt, mask)
        aligned = np.maximum(scale * disparity + shift, 1e-3 * gt[mask].max())
        return depth_metrics(aligned, gt, mask)
    mask = prepared.valid & (gt > 0) & (gt < context.max_depth) & np.isfinite(disparity)
    target = np.zeros_like(gt)
    target[mask] = 1.0 / gt[mask]
    scale, shift = _fit(disparity, target, mask)
    aligned = np.maximum(scale * disparity + shift, 1.0 / context.max_depth)  # disparity clamp >= 1/cap
    return depth_metrics(1.0 / aligned, gt, mask)


@register_protocol("aligned-disparity")
def aligned_disparity() -> Protocol:
    return Protocol(
        "aligned-disparity",
        "MiDaS/DPT zero-shot: per-image least-squares scale and shift of the prediction's disparity to 1/g, "
        "aligned disparity clamped at >= 1/max depth, inverted and scored in depth; full resolution, "
        "valid 0<g<max, no crop, bilinear align_corners=False (disparity GT: aligned and scored in disparity)",
        ("depth", "disparity"), ("depth", "disparity"), _score_aligned_disparity,
    )


def _score_aligned_depth(pred, model_space, prepared, context, gt_space):
    depth = upsample(pred, prepared.gt.shape, align_corners=False).astype(np.float64)
    gt = prepared.gt.astype(np.float64)
    mask = prepared.valid & (gt > context.min_depth) & (gt < context.max_depth) & np.isfinite(depth)
    scale, shift = _fit(depth, gt, mask)
    aligned = clamp_depth(scale * depth + shift, context.min_depth, context.max_depth)
    return depth_metrics(aligned, gt, mask)


@register_protocol("aligned-depth")
def aligned_depth() -> Protocol:
    return Protocol(
        "aligned-depth",
        "per-image least-squares scale and shift in depth space, aligned depth clamped to [min, max]; "
        "full resolution, valid min<g<max, no crop, bilinear align_corners=False",
        ("depth",), ("depth",), _score_aligned_depth,
    )


def resolve_protocol(requested: str | None, model_space: str, gt_space: str | None) -> tuple[str, str | None]:
    """(protocol name, note) for one model on one split; the note says why a request was overridden.

    Relative-depth models (output "disparity") and disparity GT are only ever scored with
    aligned-disparity; everything else defaults to `metric`.
    """
    if requested is not None:
        PROTOCOLS.resolve(requested)  # one-line error for unknown names
    if gt_space == "disparity" and requested != "aligned-disparity":
        return "aligned-disparity", "ground truth is relative disparity: scored with aligned-disparity"
    if model_space == "disparity" and requested != "aligned-disparity":
        asked = f" instead of '{requested}'" if requested else ""
        return "aligned-disparity", (f"relative-depth model (outputs disparity up to scale and shift): "
                                     f"scored with aligned-disparity{asked}, never with metric")
    return requested or "metric", None

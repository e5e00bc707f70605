"""kdcache's protocols against independent transcriptions of the published evaluation code they follow.

- `hu`: the test path of Hu et al. (github.com/JunjH/Boosting-Light-Weight-Depth-Estimation):
  loaddata_nyu.getTestingData (nyu_transform.Scale(240), CenterCrop([304, 228]), ToTensor(is_test=True)),
  models/net.py's final upsampling, models/test.py's `depth > 0` mask and models/util.py's evaluateError, run with
  PIL and torch on a real 16-bit depth PNG with holes, as their loader reads it.
- `metric` on KITTI: BTS's pytorch/bts_eval.py (prediction pasted into the full frame, Garg crop of the full frame).
- `metric-zoedepth` on KITTI: ZoeDepth's zoedepth/data/data_mono.py (GT cropped to 352x1216 with the image) and
  zoedepth/utils/misc.py compute_metrics (Garg fractions of the cropped GT).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from kdcache.data.images import load_depth_png
from kdcache.data.sample import Sample
from kdcache.evaluate.context import crop_mask, dataset_context
from kdcache.evaluate.protocols import create_protocol
from kdcache.metrics import depth_metrics

NYU, KITTI = dataset_context("nyu-test"), dataset_context("kitti-eigen-test")


# ---------------------------------------------------------------- Hu et al.: the transcription


def holey_depth_mm(seed: int) -> np.ndarray:
    """A 480x640 uint16 depth PNG in millimetres with NYU raw depth's defects: speckle, blobs, empty borders."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    metres = 1.0 + 4.0 * yy / 480 + 2.0 * np.sin(xx / 60.0 + seed) ** 2 + rng.normal(0, 0.05, yy.shape)
    mm = np.round(metres * 1000).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.03] = 0  # 3 % speckle holes
    for _ in range(8):  # blob holes (specular and dark surfaces)
        cy, cx, radius = rng.integers(30, 450), rng.integers(30, 610), rng.integers(6, 30)
        mm[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = 0
    mm[:, :45], mm[:12], mm[-9:], mm[:, -20:] = 0, 0, 0, 0  # the depth camera's empty frame borders
    return mm


def hu_test_transform(rgb: np.ndarray, png_path) -> tuple[np.ndarray, torch.Tensor]:
    """nyu_transform.Scale(240) + CenterCrop([304, 228]) + ToTensor(is_test=True) on one (RGB, depth PNG) pair."""
    image, depth = Image.fromarray(rgb), Image.open(png_path)
    w, h = image.size  # Scale.changeScale: the smaller edge becomes 240
    size = (int(240 * w / h), 240) if w >= h else (240, int(240 * h / w))
    image, depth = image.resize(size, Image.BILINEAR), depth.resize(size, Image.NEAREST)
    x1, y1 = int(round((size[0] - 304) / 2.0)), int(round((size[1] - 228) / 2.0))  # CenterCrop, size_image for both
    image, depth = (im.crop((x1, y1, 304 + x1, 228 + y1)) for im in (image, depth))
    raw = np.array(depth, np.int16 if depth.mode == "I;16" else np.int32)
    return np.asarray(image), torch.from_numpy(raw)[None, None].float() / 1000  # ToTensor(is_test=True): mm -> m


def hu_evaluate_error(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """models/util.py evaluateError on the masked pixels (float32 torch; δ with <=)."""
    diff = torch.abs(output - target)
    n = float(target.numel())
    ratio = torch.max(output / target, target / output)
    return {
        "rmse": float(torch.sqrt(torch.sum(diff**2) / n)),
        "abs_rel": float(torch.sum(diff / target) / n),
        "log10": float(torch.sum(torch.abs(torch.log(output) / math.log(10) - torch.log(target) / math.log(10))) / n),
        **{f"d{k}": float(torch.sum(torch.le(ratio, 1.25**k).float()) / n) for k in (1, 2, 3)},
    }


def hu_reference(rgb, png_path, model_output: np.ndarray) -> tuple[np.ndarray, dict]:
    image, target = hu_test_transform(rgb, png_path)
    # models/net.py ends with F.upsample(out, size=[228, 304], mode='bilinear', align_corners=True).
    output = F.interpolate(torch.from_numpy(model_output)[None, None], size=[228, 304], mode="bilinear",
                           align_corners=True)
    mask = target > 0  # models/test.py
    return image, hu_evaluate_error(output[mask], target[mask])


def old_bilinear_hu_gt(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What kdcache did before: holes set to 0, GT resized with PIL *bilinear*, then the same centre crop."""
    small = Image.fromarray(np.where(valid, depth, 0).astype(np.float32)).resize((320, 240), Image.BILINEAR)
    return np.asarray(small.crop((8, 6, 312, 234)), np.float32)


def torch_nearest_hu_gt(depth: np.ndarray) -> np.ndarray:
    """torch's `nearest` (source index floor(i * in / out)): another wrong reading of the reference."""
    small = F.interpolate(torch.from_numpy(depth)[None, None], size=(240, 320), mode="nearest")[0, 0].numpy()
    return small[6:234, 8:312]


@pytest.fixture(scope="module")
def nyu_pairs(tmp_path_factory):
    """Three (rgb, PNG path, model output at 114x152) triples."""
    folder, pairs = tmp_path_factory.mktemp("hu"), []
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        path = folder / f"sync_depth_{seed:05d}.png"
        Image.fromarray(holey_depth_mm(seed)).save(path)
        rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:114, 0:152]
        output = (1.0 + 4.0 * yy / 114 + 2.0 * np.sin(xx / 14.25 + seed) ** 2) * rng.lognormal(0, 0.2, yy.shape)
        pairs.append((rgb, path, output.astype(np.float32)))
    return pairs


def kdcache_hu(rgb, path, output):
    depth, valid = load_depth_png(path, scale=1000.0)  # the reader of NYU's official-splits PNGs
    protocol = create_protocol("hu")
    view = protocol.prepare(Sample("s", rgb, depth, valid, "depth", {"dataset": "nyu"}), NYU)
    return view, protocol.score(output, "depth", view, NYU)


HU_KEYS = ("rmse", "abs_rel", "log10", "d1", "d2", "d3")


def test_hu_matches_the_reference_transform_on_depth_with_holes(nyu_pairs):
    for rgb, path, output in nyu_pairs:
        ref_image, ref = hu_reference(rgb, path, output)
        view, ours = kdcache_hu(rgb, path, output)
        assert np.array_equal(view.image, ref_image)  # the model sees exactly their input
        for key in HU_KEYS:
            assert ours[key] == pytest.approx(ref[key], abs=1e-6), key


def test_hu_ground_truth_is_the_reference_nearest_resize_not_bilinear_or_torch_nearest(nyu_pairs):
    """The two wrong readings score the same arrays measurably differently, so the test above can fail."""
    for rgb, path, output in nyu_pairs:
        _, target = hu_test_transform(rgb, path)
        view, ours = kdcache_hu(rgb, path, output)
        assert np.array_equal(view.gt, target[0, 0].numpy()) and np.array_equal(view.valid, view.gt > 0)
        depth, valid = load_depth_png(path, scale=1000.0)
        upsampled = F.interpolate(torch.from_numpy(output)[None, None], size=(228, 304), mode="bilinear",
                                  align_corners=True)[0, 0].numpy()
        for wrong_gt, gap in ((old_bilinear_hu_gt(depth, valid), 0.02), (torch_nearest_hu_gt(depth), 1e-4)):
            wrong = depth_metrics(upsampled, wrong_gt, wrong_gt > 0, delta_inclusive=True)
            assert abs(wrong["abs_rel"] - ours["abs_rel"]) > gap


# ---------------------------------------------------------------- KITTI: BTS and ZoeDepth transcriptions


def compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """BTS bts_eval.py compute_errors (ZoeDepth's misc.py compute_errors is the same formulas)."""
    thresh = np.maximum(gt / pred, pred / gt)
    err = np.log(pred) - np.log(gt)
    return {
        "d1": (thresh < 1.25).mean(), "d2": (thresh < 1.25**2).mean(), "d3": (thresh < 1.25**3).mean(),
        "rmse": np.sqrt(((gt - pred) ** 2).mean()), "rmse_log": np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean()),
        "abs_rel": np.mean(np.abs(gt - pred) / gt), "sq_rel": np.mean(((gt - pred) ** 2) / gt),
        "silog": np.sqrt(np.mean(err**2) - np.mean(err) ** 2) * 100,
        "log10": np.mean(np.abs(np.log10(pred) - np.log10(gt))),
    }


def clamp_and_garg(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The part BTS's eval() and ZoeDepth's compute_metrics share: clamp, valid range, Garg fractions of `gt`."""
    pred = pred.copy()
    pred[pred < 1e-3], pred[pred > 80] = 1e-3, 80
    pred[np.isinf(pred)], pred[np.isnan(pred)] = 80, 1e-3
    valid = np.logical_and(gt > 1e-3, gt < 80)
    h, w = gt.shape
    eval_mask = np.zeros(valid.shape)
    eval_mask[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = 1
    valid = np.logical_and(valid, eval_mask)
    return compute_errors(gt[valid], pred[valid])


def kb_corner(gt: np.ndarray) -> tuple[int, int]:
    height, width = gt.shape
    return int(height - 352), int((width - 1216) / 2)


def bts_kitti(gt: np.ndarray, window_pred: np.ndarray) -> dict[str, float]:
    top, left = kb_corner(gt)  # bts_eval.py: paste the 352x1216 prediction into a zero full frame
    uncropped = np.zeros(gt.shape, np.float32)
    uncropped[top:top + 352, left:left + 1216] = window_pred
    return clamp_and_garg(gt, uncropped)


def zoedepth_kitti(gt: np.ndarray, window_pred: np.ndarray) -> dict[str, float]:
    top, left = kb_corner(gt)  # data_mono.py (do_kb_crop, online_eval): the GT is cropped with the image
    return clamp_and_garg(gt[top:top + 352, left:left + 1216], window_pred)


def kitti_frame(seed: int, shape=(375, 1242)):
    """Sparse LiDAR-like GT (uint16, depth x 256) and a model output at half the KB window."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    metres = 4.0 + 60.0 * (1 - yy / shape[0]) ** 2 + 5.0 * np.sin(xx / 90.0) ** 2
    png = np.where((yy > shape[0] * 0.3) & (rng.random(shape) < 0.08), np.round(metres * 256), 0).astype(np.uint16)
    gy, gx = np.mgrid[0:176, 0:608]
    output = (4.0 + 60.0 * (1 - (gy * 2 + 23) / shape[0]) ** 2 + 5.0 * np.sin(gx / 45.0) ** 2)
    return png, (output * rng.lognormal(0, 0.15, output.shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(375, 1242), (370, 1224)])
def test_kitti_metric_is_bts_and_metric_zoedepth_is_zoedepth(tmp_path, shape):
    png, output = kitti_frame(shape[0], shape)
    Image.fromarray(png).save(tmp_path / "gt.png")
    depth, valid = load_depth_png(tmp_path / "gt.png", scale=256.0)
    sample = Sample("k", np.zeros((*shape, 3), np.uint8), depth, valid, "depth", {"dataset": "kitti"})
    window = F.interpolate(torch.from_numpy(output)[None, None], size=(352, 1216), mode="bilinear",
                           align_corners=True)[0, 0].numpy()
    scores = {}
    for name, reference in (("metric", bts_kitti), ("metric-zoedepth", zoedepth_kitti)):
        protocol = create_protocol(name)
        ours = protocol.score(output, "depth", protocol.prepare(sample, KITTI), KITTI)
        expected = reference(depth, window)
        for key, value in expected.items():
            assert ours[key] == pytest.approx(float(value), abs=1e-6), (name, key)
        scores[name] = ours
    assert abs(scores["metric"]["rmse"] - scores["metric-zoedepth"]["rmse"]) > 1e-3  # the conventions differ


def test_zoedepth_garg_window_in_full_frame_coordinates():
    # Garg fractions of the 352x1216 KB crop, shifted by the crop corner (23, 13) of a 375x1242 frame.
    rows, cols = np.nonzero(crop_mask("garg", (352, 1216)))
    assert (rows.min() + 23, rows.max() + 24, cols.min() + 13, cols.max() + 14) == (166, 372, 56, 1185)
    rows, cols = np.nonzero(crop_mask("garg", (375, 1242)))  # BTS: fractions of the full frame
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)

"""Each protocol's crop, range, clamp and alignment on constructed cases (test_protocol_references.py
compares them with transcriptions of the published code)."""

import numpy as np
import pytest
import torch

from kdcache.data.sample import Sample
from kdcache.errors import KdcacheError
from kdcache.evaluate.context import crop_mask, dataset_context
from kdcache.evaluate.protocols import PROTOCOLS, create_protocol, pil_nearest_indices, resolve_protocol
from kdcache.scale_shift import fit_scale_shift

NYU = dataset_context("nyu-test")


def nyu_sample(depth=None, valid=None):
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9.0, (480, 640)).astype(np.float32) if depth is None else depth
    valid = np.ones(depth.shape, bool) if valid is None else valid
    image = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return Sample("s0", image, depth, valid, "depth", {"dataset": "nyu"})


@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_a_perfect_prediction_scores_perfectly(name):
    protocol = create_protocol(name)
    view = protocol.prepare(nyu_sample())
    space = "depth"
    pred = view.gt.copy()
    pred[pred <= 0] = 1.0  # holes are not scored
    m = protocol.score(pred, space, view, NYU)
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-5) and m["d1"] == 1.0
    if "disparity" in protocol.model_spaces:
        m = protocol.score(1.0 / pred, "disparity", view, NYU)
        assert m["abs_rel"] == pytest.approx(0.0, abs=1e-5)


def test_eigen_crop_indices_and_garg_crop_on_kitti_size():
    mask = crop_mask("eigen", (480, 640))
    rows, cols = np.nonzero(mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (45, 470, 41, 600)
    rows, cols = np.nonzero(crop_mask("garg", (375, 1242)))
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    assert crop_mask(None, (4, 5)).all()


def test_metric_ignores_everything_outside_the_eigen_crop_and_range():
    depth = np.full((480, 640), 4.0, np.float32)
    depth[100, 100] = 12.0  # beyond NYU's 10 m cap: not scored
    pred = depth.copy()
    pred[:45] = 100.0  # garbage outside the crop
    pred[:, 601:] = 0.5
    pred[100, 100] = 1.0
    m = create_protocol("metric").score(pred, "depth", create_protocol("metric").prepare(nyu_sample(depth)), NYU)
    assert m["abs_rel"] == 0.0
    # Without the crop (synth) the garbage counts.
    synth = dataset_context("synth-val", {"max_depth": 20.0})
    assert (synth.crop, synth.max_depth) == (None, 20.0)
    view = create_protocol("metric").prepare(nyu_sample(depth))
    assert create_protocol("metric").score(pred, "depth", view, synth)["abs_rel"] > 0


def test_metric_clamps_inf_to_max_and_nan_to_min():
    depth = np.full((4, 4), 5.0, np.float32)
    sample = Sample("s", np.zeros((4, 4, 3), np.uint8), depth, np.ones((4, 4), bool), "depth", {})
    context = dataset_context("synth-test")
    protocol = create_protocol("metric")
    pred = depth.copy()
    pred[0, 0], pred[0, 1], pred[0, 2] = np.inf, np.nan, 50.0
    m = protocol.score(pred, "depth", protocol.prepare(sample), context)
    # inf and 50 -> 10 (error 1 each), nan -> 1e-3 (error 0.9998): mean over 16 pixels.
    assert m["abs_rel"] == pytest.approx((1 + 1 + (5 - 1e-3) / 5) / 16)


def test_metric_upsamples_with_align_corners_true():
    depth = np.array([[1.0, 2.0, 3.0]], np.float32).repeat(3, axis=0)
    sample = Sample("s", np.zeros((3, 3, 3), np.uint8), depth, np.ones((3, 3), bool), "depth", {})
    pred = np.array([[1.0, 3.0]], np.float32).repeat(2, axis=0)  # corners-aligned -> exactly 1, 2, 3
    protocol = create_protocol("metric")
    assert protocol.score(pred, "depth", protocol.prepare(sample), dataset_context("synth"))["abs_rel"] < 1e-6


def test_hu_geometry_mask_and_inclusive_delta():
    depth = np.full((480, 640), 3.0, np.float32)
    valid = np.ones_like(depth, bool)
    valid[200:280, 280:360] = False  # a hole in the middle survives as g == 0 after resizing
    protocol = create_protocol("hu")
    view = protocol.prepare(nyu_sample(depth, valid))
    assert view.image.shape == (228, 304, 3) and view.gt.shape == (228, 304)
    rows, cols = pil_nearest_indices((480, 640), (240, 320))  # PIL samples pixel centres: odd rows and columns
    assert np.array_equal(rows, np.arange(1, 480, 2)) and np.array_equal(cols, np.arange(1, 640, 2))
    assert not view.valid[110, 150] and view.valid[0, 0]
    assert np.allclose(view.gt[view.valid & (view.gt > 2.99)], 3.0)
    exact_ratio = view.gt / 1.25
    assert protocol.score(np.maximum(exact_ratio, 1e-3), "depth", view, NYU)["d1"] == pytest.approx(1.0, abs=0.02)
    with pytest.raises(KdcacheError, match="640x480"):
        protocol.prepare(Sample("s", np.zeros((240, 320, 3), np.uint8), np.ones((240, 320), np.float32),
                                np.ones((240, 320), bool), "depth", {}))


def test_hu_crop_is_centred():
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :, 0] = np.arange(640)[None, :] // 4  # column code survives a 2x bilinear downscale
    view = create_protocol("hu").prepare(nyu_sample(np.ones((480, 640), np.float32)).__class__(
        "s", image, np.ones((480, 640), np.float32), np.ones((480, 640), bool), "depth", {}))
    # Resized column c covers source columns 2c, 2c+1; crop starts at resized column 8 -> source 16..17 -> code 4.
    assert view.image[0, 0, 0] == 4 and view.image[0, -1, 0] == (2 * (8 + 303)) // 4


def test_aligned_disparity_undoes_scale_and_shift_and_clamps_at_the_cap():
    sample = nyu_sample()
    protocol = create_protocol("aligned-disparity")
    view = protocol.prepare(sample)
    relative = (1.0 / view.gt - 0.02) / 7.0  # an affine transform of the true disparity
    assert protocol.score(relative, "disparity", view, NYU)["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    # Where the aligned disparity falls below 1/10 it is read as 10 m, never farther.
    depth = np.array([[9.5, 9.5, 2.0, 2.0]], np.float32)
    four = Sample("s", np.zeros((1, 4, 3), np.uint8), depth, np.ones((1, 4), bool), "depth", {"dataset": "nyu"})
    disparity = np.array([[0.0, 0.9, 1.0, 1.0]], np.float32)
    arrays = (disparity, 1.0 / depth, np.ones((1, 4), bool))  # one image of 4 pixels
    scale, shift = (float(v) for v in fit_scale_shift(*(torch.from_numpy(a) for a in arrays)))
    assert shift < 0.1  # the first pixel's aligned disparity is below the cap
    aligned = np.maximum(scale * disparity + shift, 0.1)
    expected = np.mean(np.abs(depth - 1 / aligned) / depth)
    m = protocol.score(disparity, "disparity", protocol.prepare(four), dataset_context("nyu-test", crop="none"))
    assert m["abs_rel"] == pytest.approx(expected)
    assert 1 / aligned[0, 0] == 10.0


def test_aligned_disparity_on_disparity_ground_truth_scores_in_disparity():
    gt = np.random.default_rng(2).uniform(10, 200, (6, 8)).astype(np.float32)
    sample = Sample("h", np.zeros((6, 8, 3), np.uint8), gt, np.ones((6, 8), bool), "disparity", {})
    protocol = create_protocol("aligned-disparity")
    m = protocol.score(0.5 * gt + 3, "disparity", protocol.prepare(sample), dataset_context("hrwsi-val"), "disparity")
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(KdcacheError, match="aligned-disparity"):
        create_protocol("metric").score(gt, "depth", protocol.prepare(sample), dataset_context("x"), "disparity")


def test_aligned_depth_recovers_scale_and_shift_and_refuses_disparity():
    sample = nyu_sample()
    protocol = create_protocol("aligned-depth")
    view = protocol.prepare(sample)
    assert protocol.score(0.5 * view.gt + 1.0, "depth", view, NYU)["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(KdcacheError, match="aligned-disparity"):
        protocol.score(view.gt, "disparity", view, NYU)


def test_relative_models_and_disparity_gt_never_get_metric():
    assert resolve_protocol(None, "depth", "depth") == ("metric", None)
    assert resolve_protocol("hu", "depth", "depth") == ("hu", None)
    name, note = resolve_protocol("metric", "disparity", "depth")
    assert name == "aligned-disparity" and "never with metric" in note
    assert resolve_protocol(None, "disparity", "depth")[0] == "aligned-disparity"
    assert resolve_protocol("metric", "depth", "disparity")[0] == "aligned-disparity"
    with pytest.raises(KdcacheError, match="unknown protocol"):
        resolve_protocol("zoe", "depth", "depth")


def test_dataset_context_defaults_and_overrides():
    assert (NYU.crop, NYU.max_depth) == ("eigen", 10.0)
    kitti = dataset_context("kitti-eigen-test")
    assert (kitti.crop, kitti.max_depth) == ("garg", 80.0)
    assert dataset_context("kitti-eigen-test", crop="eigen-kitti", max_depth=50).max_depth == 50
    with pytest.raises(KdcacheError, match="crop"):
        dataset_context("nyu-test", crop="square")


def test_kitti_metric_feeds_the_kb_crop_and_pastes_it_back():
    depth = np.full((375, 1242), 20.0, np.float32)
    sample = Sample("k", np.zeros((375, 1242, 3), np.uint8), depth, depth > 0, "depth", {"dataset": "kitti"})
    kitti = dataset_context("kitti-eigen-test")
    protocol = create_protocol("metric")
    view = protocol.prepare(sample, kitti)
    assert view.image.shape[:2] == (352, 1216) and view.offset == (23, 13) and view.input_key == "kb-crop"
    # A perfect prediction of the window scores perfectly: the Garg crop lies inside the KB window.
    assert protocol.score(np.full((176, 608), 20.0, np.float32), "depth", view, kitti)["abs_rel"] == pytest.approx(0)
    assert protocol.prepare(sample, NYU).offset is None

"""depth_metrics against values computed by hand on tiny arrays (the formulas of BTS's and ZoeDepth's `compute_errors`,
listed in docs/evaluation.md)."""

import math

import numpy as np
import pytest

from kdcache.errors import KdcacheError
from kdcache.metrics import METRIC_KEYS, NoValidPixels, depth_metrics, mean_metrics


def test_metrics_match_hand_computed_values():
    gt = np.array([1.0, 2.0, 4.0])
    pred = np.array([2.0, 2.0, 2.0])
    m = depth_metrics(pred, gt)
    ln2 = math.log(2)
    assert m["abs_rel"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["sq_rel"] == pytest.approx((1 + 0 + 1) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["rmse_log"] == pytest.approx(ln2 * math.sqrt(2 / 3))
    assert m["log10"] == pytest.approx(2 / 3 * math.log10(2))
    assert m["silog"] == pytest.approx(100 * ln2 * math.sqrt(2 / 3))  # mean(e) = 0 here
    assert (m["d1"], m["d2"], m["d3"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert set(m) == set(METRIC_KEYS)


def test_silog_subtracts_the_squared_mean_log_error():
    gt = np.array([1.0, 1.0])
    pred = np.array([2.0, 4.0])  # e = ln2, 2 ln2 -> var = ln2^2 / 4
    assert depth_metrics(pred, gt)["silog"] == pytest.approx(100 * math.log(2) / 2)
    # A pure scale error is invisible to SILog.
    assert depth_metrics(np.full(3, 3.0), np.full(3, 1.5))["silog"] == pytest.approx(0.0, abs=1e-6)


def test_delta_is_strict_unless_hu_variant():
    gt = np.array([1.25, 1.0])
    pred = np.array([1.0, 1.0])  # ratio exactly 1.25 on the first pixel
    assert depth_metrics(pred, gt)["d1"] == 0.5
    assert depth_metrics(pred, gt, delta_inclusive=True)["d1"] == 1.0


def test_valid_mask_and_nonpositive_gt_are_ignored():
    gt = np.array([[2.0, 0.0], [2.0, 7.0]])
    pred = np.array([[2.0, 5.0], [2.0, 1.0]])
    valid = np.array([[True, True], [True, False]])
    m = depth_metrics(pred, gt, valid)
    assert m["abs_rel"] == 0.0 and m["d1"] == 1.0


def test_per_image_mean_not_pixel_pooling():
    a = depth_metrics(np.array([2.0]), np.array([1.0]))  # abs_rel 1
    b = depth_metrics(np.full(9, 1.0), np.full(9, 1.0))  # abs_rel 0
    assert mean_metrics([a, b])["abs_rel"] == pytest.approx(0.5)  # pooled pixels would give 0.1


def test_errors_for_empty_mask_bad_predictions_and_shapes():
    with pytest.raises(NoValidPixels):
        depth_metrics(np.ones(3), np.zeros(3))
    with pytest.raises(KdcacheError, match="clamp"):
        depth_metrics(np.array([0.0, 1.0]), np.ones(2))
    with pytest.raises(KdcacheError, match="shape"):
        depth_metrics(np.ones(3), np.ones(4))
    with pytest.raises(KdcacheError):
        mean_metrics([])


@pytest.mark.parametrize("valid_shape", [(4,), (1, 4), (4, 3), (3, 3)])
def test_a_valid_mask_of_another_shape_is_one_clear_error(valid_shape):
    # (4,) and (1, 4) would silently broadcast over the rows; (4, 3) and (3, 3) would raise numpy's ValueError.
    gt = np.full((3, 4), 2.0)
    with pytest.raises(KdcacheError, match=r"valid mask shape \(.*\) != ground truth shape \(3, 4\)") as err:
        depth_metrics(gt, gt, np.ones(valid_shape, bool))
    assert str(valid_shape) in str(err.value)

"""The one least-squares scale-and-shift fit (`kdcache.scale_shift`) and its users agreeing on it: the aligned
protocol of `kdcache eval`, training's validation AbsRel and the `lstsq` alignment of the relative losses."""

import numpy as np
import pytest
import torch

from kdcache.data.sample import Sample
from kdcache.evaluate.context import dataset_context
from kdcache.evaluate.protocols import create_protocol
from kdcache.losses.align import lstsq_align
from kdcache.scale_shift import fit_scale_shift
from kdcache.train.validate import batch_abs_rel


def test_recovers_each_images_scale_and_shift():
    generator = torch.Generator().manual_seed(1)
    pred = torch.rand(2, 1, 20, 30, generator=generator) * 5 + 0.1
    mask = torch.rand(2, 1, 20, 30, generator=generator) > 0.3
    truth_scale, truth_shift = torch.tensor([3.25, 0.5]), torch.tensor([-0.75, 2.0])
    target = truth_scale.view(-1, 1, 1, 1) * pred + truth_shift.view(-1, 1, 1, 1)
    scale, shift = fit_scale_shift(pred, target, mask)
    assert scale.dtype == torch.float64 and scale.shape == (2,)
    assert torch.allclose(scale, truth_scale.double(), atol=1e-5) and torch.allclose(shift, truth_shift.double(), atol=1e-5)


def test_singular_rule_scale_zero_shift_the_targets_mean():
    target = torch.arange(5.0)[None]
    assert [float(v) for v in fit_scale_shift(torch.ones(1, 5), target, torch.ones(1, 5, dtype=torch.bool))] == [0.0, 2.0]
    # A constant only on the valid pixels is singular too; the mean is over those pixels.
    pred = torch.tensor([[7.0, 7.0, 7.0, 1.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert [float(v) for v in fit_scale_shift(pred, torch.tensor([[1.0, 2.0, 6.0, 100.0]]), mask)] == [0.0, 3.0]
    # No valid pixel: nothing to fit.
    assert [float(v) for v in fit_scale_shift(pred, pred, torch.zeros_like(mask))] == [0.0, 0.0]


def test_pixels_outside_the_mask_may_hold_anything():
    pred = torch.tensor([[1.0, 2.0, 3.0, float("nan"), float("inf")]])
    mask = torch.tensor([[True, True, True, False, False]])
    scale, shift = fit_scale_shift(pred, 2 * pred + 1, mask)
    assert float(scale) == pytest.approx(2.0) and float(shift) == pytest.approx(1.0)


def test_the_losses_alignment_back_propagates_in_normal_and_singular_images():
    x = torch.stack([torch.linspace(0.1, 1.0, 12).view(1, 3, 4), torch.full((1, 3, 4), 0.5)]).requires_grad_()
    y = torch.rand(2, 1, 3, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(y, dtype=torch.bool)
    aligned = lstsq_align(x, y, mask)
    assert aligned.dtype == x.dtype
    assert torch.allclose(aligned[1], y[1].mean().expand(1, 3, 4))  # constant student: the reference's mean
    aligned.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[0].abs().sum() > 0


def _depth_map() -> np.ndarray:
    rows, cols = np.mgrid[0:12, 0:16]
    return (1.0 + 0.25 * rows + 0.1 * cols + 0.3 * np.sin(cols)).astype(np.float32)  # 1-4.5 m


@pytest.mark.parametrize("case", ["normal", "constant"])
def test_validation_and_test_scoring_agree(case):
    """The AbsRel that picks `checkpoints/best` equals `kdcache eval`'s aligned-disparity AbsRel on one image.

    Both fit with `fit_scale_shift`; their clamps differ (validation floors the aligned disparity at 1/the image's
    farthest GT, the protocol at 1/the dataset's cap), so the cases keep every aligned disparity above both."""
    depth = _depth_map()
    valid = np.ones(depth.shape, bool)
    valid[:2, :3] = False
    # A relative student's raw output: its inverse is the disparity (here a curved function of the truth's).
    output = 1.0 / (0.3 * depth ** -1.3 + 0.05) if case == "normal" else np.full(depth.shape, 2.0, np.float32)
    output = output.astype(np.float32)

    validation = batch_abs_rel(torch.from_numpy(output)[None, None], torch.from_numpy(depth)[None, None],
                               torch.from_numpy(valid)[None, None], "disparity")
    protocol = create_protocol("aligned-disparity")
    sample = Sample("s", np.zeros(depth.shape + (3,), np.uint8), depth, valid, "depth", {"dataset": "nyu"})
    test = protocol.score(1.0 / output, "disparity", protocol.prepare(sample), dataset_context("nyu-test", crop="none"))
    assert validation[0] == pytest.approx(test["abs_rel"], rel=1e-5)
    assert test["abs_rel"] > 0.01  # not a perfect fit: the agreement is on a real error
    if case == "constant":  # scale 0, shift mean(1/g): every pixel is read as the same depth
        mean_disparity = np.mean(1.0 / depth[valid].astype(np.float64))
        expected = np.mean(np.abs(depth[valid] - 1.0 / mean_disparity) / depth[valid])
        assert test["abs_rel"] == pytest.approx(expected, rel=1e-5)

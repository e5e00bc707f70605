"""Losses: known answers, masking rules, gradients, and build_objective."""

from __future__ import annotations

import math

import pytest
import torch

from kdcache.errors import KdcacheError
from kdcache.losses import LOSSES, build_objective, create_loss, list_losses

B, H, W = 2, 8, 10
TEACHER_CHANNELS = {"neck_0": 6, "neck_1": 5}
STUDENT_CHANNELS = [3, 4, 7]


def depth_map(seed: int = 0, low: float = 0.5, high: float = 8.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(B, 1, H, W, generator=generator)


def make_target(gt=None, teacher=None, space="disparity", features=None, **extra):
    gt = depth_map(1) if gt is None else gt
    target = {
        "gt": gt,
        "valid": torch.ones_like(gt, dtype=torch.bool),
        "has_gt": torch.ones(B, dtype=torch.bool),
        "teacher": 1.0 / depth_map(2) if teacher is None else teacher,
        "teacher_ok": torch.ones(B, dtype=torch.bool),
        "teacher_space": space,
        "features": features if features is not None else {
            layer: torch.randn(B, c, 3, 4, generator=torch.Generator().manual_seed(i))
            for i, (layer, c) in enumerate(TEACHER_CHANNELS.items())
        },
    }
    target.update(extra)
    return target


def make_pred(depth=None, requires_grad=True):
    depth = depth_map(3) if depth is None else depth
    depth = depth.clone().requires_grad_(requires_grad)
    features = [torch.randn(B, c, 6 // (i + 1), 8 // (i + 1), requires_grad=requires_grad)
                for i, c in enumerate(STUDENT_CHANNELS)]
    return {"depth": depth, "features": features}


def create(name, **options):
    return create_loss(name, {"student_channels": STUDENT_CHANNELS, "teacher_channels": TEACHER_CHANNELS}, options)


# --- every registered loss -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list_losses())
def test_loss_is_a_finite_scalar_with_gradients(name):
    loss = create(name)
    pred = make_pred()
    value = loss(pred, make_target())
    assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0
    value.backward()
    assert pred["depth"].grad is not None or any(f.grad is not None for f in pred["features"])
    grads = [pred["depth"].grad] + [f.grad for f in pred["features"]] + [p.grad for p in loss.parameters()]
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_losses())
def test_excluded_samples_give_a_graph_connected_zero(name):
    """No labeled sample / no valid teacher in the batch: exactly 0, and backward still reaches the inputs."""
    loss = create(name)
    pred = make_pred()
    target = make_target(has_gt=torch.zeros(B, dtype=torch.bool), teacher_ok=torch.zeros(B, dtype=torch.bool))
    value = loss(pred, target)
    assert value.item() == 0.0
    value.backward()
    assert pred["depth"].grad is not None and torch.all(pred["depth"].grad == 0)
    for parameter in loss.parameters():
        assert parameter.grad is not None


@pytest.mark.parametrize("name", list_losses())
def test_only_included_samples_count(name):
    """Changing an excluded sample's targets (or its prediction, for GT losses) does not change the loss."""
    loss = create(name)
    pred = make_pred(requires_grad=False)
    target = make_target(has_gt=torch.tensor([True, False]), teacher_ok=torch.tensor([True, False]))
    before = loss(pred, target)
    target["gt"][1] = 123.0
    target["teacher"][1] = float("nan")
    for layer in target["features"]:
        target["features"][layer][1] = float("inf")
    after = loss(pred, target)
    torch.testing.assert_close(before, after)


@pytest.mark.parametrize("name", list_losses())
def test_loss_declares_the_targets_it_reads(name):
    """Training loads only the fields its losses read (LOSSES.info(name)["targets"])."""
    targets = set(LOSSES.info(name)["targets"])
    assert targets and targets <= {"gt", "teacher", "features"}
    target = make_target()
    for field in {"gt": ["gt"], "teacher": ["teacher"], "features": ["features"]}.keys() - targets:
        target.pop(field)  # fields a loss does not declare are never needed
    create(name)(make_pred(), target)


# --- known answers ---------------------------------------------------------------------------------------------

def test_silog_of_a_constant_scale_prediction():
    gt = depth_map(1)
    scale = 1.7
    value = create("silog")(make_pred(gt * scale), make_target(gt=gt))
    expected = 10.0 * math.sqrt(1 - 0.85) * math.log(scale)  # e = ln(scale) everywhere: var 0, mean ln(scale)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_silog_perfect_prediction_has_finite_gradients():
    gt = depth_map(1)
    pred = make_pred(gt)
    value = create("silog")(pred, make_target(gt=gt))
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-4)
    assert torch.isfinite(pred["depth"].grad).all()


def test_l1_masks_invalid_pixels():
    gt = torch.full((B, 1, H, W), 2.0)
    pred = make_pred(torch.full((B, 1, H, W), 3.0))
    valid = torch.ones_like(gt, dtype=torch.bool)
    valid[:, :, :4] = False
    pred["depth"].data[:, :, :4] = 100.0  # errors on invalid pixels must not count
    assert create("l1")(pred, make_target(gt=gt, valid=valid)).item() == pytest.approx(1.0)


def test_gt_zero_means_invalid_and_no_nan():
    gt = depth_map(1)
    gt[:, :, 0] = 0.0
    pred = make_pred()
    value = create("silog")(pred, make_target(gt=gt))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(pred["depth"].grad).all()


def test_berhu_at_and_above_the_threshold():
    gt = torch.full((1, 1, 1, 2), 10.0)
    depth = torch.tensor([[[[11.0, 15.0]]]])  # |e| = 1 and 5: c = 0.2 * 5 = 1
    target = {"gt": gt, "valid": torch.ones_like(gt, dtype=torch.bool), "has_gt": torch.ones(1, dtype=torch.bool)}
    value = create("berhu")({"depth": depth}, target)
    # |e| = c = 1 -> 1 (both branches agree there); |e| = 5 -> (25 + 1) / 2 = 13; mean = 7
    assert value.item() == pytest.approx(7.0)


@pytest.mark.parametrize("align", ["median", "lstsq"])
def test_kd_is_exactly_invariant_to_scale_and_shift_of_disparity(align):
    teacher = 1.0 / depth_map(2)
    student_disparity = 3.5 * teacher + 0.25
    value = create("kd", align=align)(make_pred(1.0 / student_disparity), make_target(teacher=teacher))
    assert value.item() == pytest.approx(0.0, abs=1e-5)
    # and it is not blind: a different map costs something
    other = create("kd", align=align)(make_pred(depth_map(5)), make_target(teacher=teacher))
    assert other.item() > 0.05


def test_kd_value_does_not_depend_on_the_teacher_output_range():
    """Median/MAD normalisation: a teacher in DPT's raw range (x1000) gives the same loss as a unit-range one."""
    pred = make_pred(requires_grad=False)
    teacher = 1.0 / depth_map(2)
    small = create("kd")(pred, make_target(teacher=teacher))
    large = create("kd")(pred, make_target(teacher=teacher * 1000.0 + 7.0))
    assert small.item() == pytest.approx(large.item(), rel=1e-4)


@pytest.mark.parametrize("depth_loss", ["log-l1", "silog"])
def test_kd_with_a_metric_teacher_is_direct(depth_loss):
    teacher = depth_map(2)
    loss = create("kd", depth_loss=depth_loss)
    assert loss(make_pred(teacher), make_target(teacher=teacher, space="depth")).item() == pytest.approx(0, abs=1e-4)
    scaled = loss(make_pred(teacher * 2.0), make_target(teacher=teacher, space="depth")).item()
    expected = math.log(2.0) if depth_loss == "log-l1" else 10 * math.sqrt(0.15) * math.log(2.0)
    assert scaled == pytest.approx(expected, rel=1e-4)  # a metric teacher: scale errors are penalised


def test_kd_space_ssi_treats_a_metric_teacher_as_relative():
    teacher = depth_map(2)
    affine = 1.0 / (3.0 / teacher + 0.2)  # disparity 3/t + 0.2: wrong scale and shift, right structure
    target = make_target(teacher=teacher, space="depth")
    assert create("kd", space="ssi")(make_pred(affine), target).item() == pytest.approx(0.0, abs=1e-5)
    assert create("kd", space="depth")(make_pred(affine), target).item() > 0.1  # the metric loss sees the error
    assert create("kd")(make_pred(affine), target).item() == create("kd", space="depth")(make_pred(affine),
                                                                                        target).item()


def test_kd_space_disparity_is_the_relative_disparity_error():
    teacher = torch.tensor([[[[1.0, 2.0, 4.0, 4.0]]]])
    pred = torch.tensor([[[[1.0, 4.0, 4.0, 2.0]]]])  # |1/p - 1/t| = 0, 0.25, 0, 0.25; mean 1/t = 0.5
    target = {"teacher": teacher, "teacher_ok": torch.ones(1, dtype=torch.bool), "teacher_space": "depth"}
    assert create("kd", space="disparity")({"depth": pred}, target).item() == pytest.approx(0.125 / 0.5)


@pytest.mark.parametrize("space", ["depth", "disparity"])
def test_kd_metric_spaces_refuse_a_relative_teacher(space):
    with pytest.raises(KdcacheError, match=f"space '{space}' needs a metric teacher"):
        create("kd", space=space)(make_pred(), make_target(teacher=1.0 / depth_map(2)))


def test_grad_loss_of_a_constant_offset_is_zero():
    teacher = depth_map(2)
    # metric teacher: residual ln p - ln t constant <=> a global scale
    metric = create("grad")(make_pred(teacher * 1.3), make_target(teacher=teacher, space="depth"))
    assert metric.item() == pytest.approx(0.0, abs=1e-6)
    # relative teacher: any affine map of the disparity
    disparity = 1.0 / teacher
    relative = create("grad")(make_pred(1.0 / (2.0 * disparity + 0.1)), make_target(teacher=disparity))
    assert relative.item() == pytest.approx(0.0, abs=1e-5)


def test_grad_loss_known_value():
    """One scale, residual = x ramp with slope 1 in log depth: mean |dR/dx| = (W-1)/W per pixel."""
    teacher = torch.ones(1, 1, 1, 4)
    depth = torch.exp(torch.arange(4.0)).view(1, 1, 1, 4)
    target = {"teacher": teacher, "teacher_ok": torch.ones(1, dtype=torch.bool), "teacher_space": "depth"}
    value = create("grad", scales=1)({"depth": depth}, target)
    assert value.item() == pytest.approx(3 / 4, rel=1e-5)


def test_feature_loss_with_identity_adapter_is_zero():
    teacher_channels = {"hidden": 4}
    loss = LOSSES.create("feature", student_channels=[4], teacher_channels=teacher_channels)
    adapter = loss.adapters["hidden"]
    with torch.no_grad():
        adapter.weight.copy_(torch.eye(4).view(4, 4, 1, 1))
        adapter.bias.zero_()
    teacher = torch.randn(B, 4, 3, 5)
    student = teacher.repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)  # same map on a 2x finer grid
    pred = {"depth": depth_map(), "features": [student]}
    target = {"features": {"hidden": 2.5 * teacher}, "teacher_ok": torch.ones(B, dtype=torch.bool)}
    assert loss(pred, target).item() == pytest.approx(0.0, abs=1e-5)
    target["features"]["hidden"] = -teacher  # opposite features: cosine -1, loss 2
    assert loss(pred, target).item() == pytest.approx(2.0, abs=1e-5)


def test_feature_adapters_are_objective_parameters_and_learn():
    objective = build_objective({"feature": 1.0}, STUDENT_CHANNELS, TEACHER_CHANNELS)
    names = [n for n, _ in objective.named_parameters()]
    assert names and all("adapters" in n for n in names)
    optimizer = torch.optim.SGD(objective.parameters(), lr=0.5)
    pred, target = make_pred(requires_grad=False), make_target()
    first = objective(pred, target)[0].item()
    for _ in range(20):
        optimizer.zero_grad()
        objective(pred, target)[0].backward()
        optimizer.step()
    assert objective(pred, target)[0].item() < first


def test_attention_of_identical_maps_is_zero():
    loss = LOSSES.create("attention", student_channels=[3], teacher_channels={"t": 9})
    student = torch.randn(B, 3, 4, 6)
    teacher = torch.cat([student, 2 * student, -student], dim=1)  # channel mean of f^2: 2 x the student's
    pred = {"depth": depth_map(), "features": [student]}
    target = {"features": {"t": teacher}, "teacher_ok": torch.ones(B, dtype=torch.bool)}
    assert loss(pred, target).item() == pytest.approx(0.0, abs=1e-7)
    target["features"]["t"] = torch.randn(B, 9, 4, 6)
    assert loss(pred, target).item() > 0


def test_gt_ssi_for_disparity_ground_truth_and_metric_losses_refuse_it():
    disparity = 1.0 / depth_map(1)
    target = make_target(gt=disparity, gt_space="disparity")
    pred = make_pred(1.0 / (4.0 * disparity + 1.0))
    assert create("gt-ssi")(pred, target).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(KdcacheError, match="gt-ssi"):
        create("silog")(pred, target)


# --- pairing and build_objective ---------------------------------------------------------------------------------

def test_default_pairing_uses_the_coarsest_student_maps():
    loss = create("feature")
    assert loss.pairs == {"neck_0": 1, "neck_1": 2}
    assert create("feature", pairs={"neck_0": 0, "neck_1": -1}).pairs == {"neck_0": 0, "neck_1": 2}


def test_objective_weights_and_parts():
    objective = build_objective({"silog": 1.0, "kd": 0.5, "feature": 0.1, "l1": 0.0},
                                STUDENT_CHANNELS, TEACHER_CHANNELS, options={"kd": {"align": "lstsq"}})
    assert list(objective.losses) == ["silog", "kd", "feature"]  # zero weight: not computed at all
    pred, target = make_pred(), make_target()
    total, parts = objective(pred, target)
    expected = parts["silog"] + 0.5 * parts["kd"] + 0.1 * parts["feature"]
    torch.testing.assert_close(total.detach(), expected)
    assert all(not p.requires_grad for p in parts.values())
    total.backward()
    assert pred["depth"].grad is not None


@pytest.mark.parametrize("weights, options, message", [
    ({"silogg": 1.0}, None, "unknown loss 'silogg'.*Known: .*silog"),
    ({"silog": -1.0}, None, ">= 0"),
    ({"silog": "a lot"}, None, "must be a number"),
    ({"silog": 0.0}, None, "every loss weight is 0"),
    ({}, None, "non-empty"),
    ({"kd": 1.0}, {"kd": {"align": "mean"}}, "align must be one of"),
    ({"kd": 1.0}, {"kd": {"bogus": 1}}, "bad options for loss 'kd'"),
    ({"kd": 1.0}, {"kd": {"space": "log"}}, "space must be one of"),
    ({"silog": 1.0}, {"kd": {"align": "lstsq"}}, "no positive weight"),
])
def test_objective_errors(weights, options, message):
    with pytest.raises(KdcacheError, match=message):
        build_objective(weights, STUDENT_CHANNELS, TEACHER_CHANNELS, options=options)


def test_feature_losses_need_teacher_features():
    with pytest.raises(KdcacheError, match="--features"):
        build_objective({"feature": 1.0}, STUDENT_CHANNELS, None)
    with pytest.raises(KdcacheError, match="only 3 feature maps"):
        build_objective({"attention": 1.0}, STUDENT_CHANNELS, {f"l{i}": 4 for i in range(4)})
    objective = build_objective({"feature": 1.0}, STUDENT_CHANNELS, {"missing": 3})
    with pytest.raises(KdcacheError, match="teacher feature 'missing'"):
        objective(make_pred(), make_target())


def test_kd_without_teacher_maps_is_a_clear_error():
    target = make_target()
    del target["teacher"]
    with pytest.raises(KdcacheError, match="teacher"):
        build_objective({"kd": 1.0})(make_pred(), target)


def test_bf16_predictions_are_computed_in_float32():
    pred = make_pred(requires_grad=False)
    pred["depth"] = pred["depth"].to(torch.bfloat16)
    value = build_objective({"silog": 1.0, "kd": 1.0})(pred, make_target())[0]
    assert value.dtype == torch.float32 and torch.isfinite(value)


def test_a_loss_must_declare_its_targets():
    from kdcache.losses import register_loss

    for targets in ((), ("depth",), "teachers"):
        with pytest.raises(ValueError, match="must declare the targets it reads"):
            register_loss("undeclared", targets=targets)
    with pytest.raises(TypeError):
        register_loss("undeclared")  # targets is a required keyword
    assert "undeclared" not in list_losses()


def test_loss_targets_come_from_the_registration():
    from kdcache.losses import loss_targets

    assert loss_targets("kd") == {"teacher"} and loss_targets("silog") == {"gt"}
    assert loss_targets("attention") == {"features"}
    with pytest.raises(KdcacheError, match="unknown loss 'kdd'.*Did you mean 'kd'"):
        loss_targets("kdd")

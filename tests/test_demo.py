"""The demo's plans, findings and targets. The micro demo end to end runs from an installed wheel in test_install.py."""

from __future__ import annotations

import pytest

from kdcache.demo.findings import TARGETS, check_findings, check_targets
from kdcache.demo.plan import SCALES, configs_dir, load_plan
from kdcache.demo.report import ROW_ORDER
from kdcache.demo.steps import to_toml
from kdcache.errors import KdcacheError


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_has_a_valid_plan(scale):
    plan = load_plan(scale)
    assert plan.scale == scale
    assert plan.teacher.preset and plan.student.preset
    assert len(plan.cached_splits) == 4


@pytest.mark.parametrize("path", sorted(configs_dir().glob("demo-*.toml")), ids=lambda p: p.name)
def test_every_shipped_demo_config_loads(path):
    plan = load_plan(config=path)
    assert set(plan.targets) <= set(TARGETS) and plan.expected_minutes > 0


def test_full_scale_sets_the_issue_targets():
    assert load_plan("full").targets == {"kd_aux_vs_gt_only": 0.85, "kd_aux_vs_teacher": 1.10,
                                         "student_params_vs_teacher": 0.10, "kd_aux_far_vs_kd_aux": 1.0}


def test_unknown_target_is_refused(tmp_path):
    text = (configs_dir() / "demo-micro.toml").read_text().replace("[targets]", "[targets]\nbeats_dpt = 1.0\n#", 1)
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(KdcacheError, match=r"unknown \['beats_dpt'\]"):
        load_plan(config=tmp_path / "bad.toml")


def test_unknown_scale_is_one_clear_line():
    with pytest.raises(KdcacheError, match="unknown demo scale 'huge'"):
        load_plan("huge")


def test_to_toml_round_trips_a_training_config():
    import tomllib

    config = {"cache": "c.zarr", "epochs": 2, "resolution": [32, 48], "sources": {"labeled": "synth-train[:4]"},
              "variant": [{"name": "a", "student": "s", "loss": {"silog": 1.0}, "sources": ["labeled"]}]}
    assert tomllib.loads(to_toml(config)) == config


def _rows(**abs_rel):
    return [{"name": name, "abs_rel": abs_rel[name.replace("-", "_")]} for name in ROW_ORDER]


def test_findings_report_what_the_numbers_say():
    rows = _rows(teacher=0.10, gt_only=0.20, kd_labeled=0.18, kd_labeled_aux=0.15, kd_aux_only=0.19,
                 kd_labeled_aux_far=0.17)
    assert all(f.holds for f in check_findings(rows))
    rows = _rows(teacher=0.10, gt_only=0.20, kd_labeled=0.14, kd_labeled_aux=0.15, kd_aux_only=0.19,
                 kd_labeled_aux_far=0.13)
    holds = {f.claim.split(":")[0]: f.holds for f in check_findings(rows)}
    assert not holds["Auxiliary unlabeled images help"]
    assert not holds["Scene scale matters"]
    assert "0.1500" in check_findings(rows)[2].evidence
    # A win inside the 1 % noise margin is a tie, not a reproduction.
    rows = _rows(teacher=0.10, gt_only=0.1001, kd_labeled=0.18, kd_labeled_aux=0.15, kd_aux_only=0.19,
                 kd_labeled_aux_far=0.17)
    assert not check_findings(rows)[0].holds


def test_targets_are_met_or_missed_by_their_limits():
    rows = _rows(teacher=0.10, gt_only=0.20, kd_labeled=0.18, kd_labeled_aux=0.105, kd_aux_only=0.19,
                 kd_labeled_aux_far=0.17)
    for row in rows:
        row["params"] = 10e6 if row["name"] == "teacher" else 1e6
    limits = {"kd_aux_vs_gt_only": 0.85, "kd_aux_vs_teacher": 1.10, "student_params_vs_teacher": 0.10,
              "kd_aux_far_vs_kd_aux": 1.0}
    checks = check_targets(rows, limits)
    assert [c.holds for c in checks] == [True, True, True, True]
    assert checks[1].claim == "KD + aux AbsRel within 10% of the teacher's" and "= 1.050" in checks[1].evidence
    rows[3]["abs_rel"], rows[5]["abs_rel"] = 0.18, 0.17  # kd-labeled-aux worse: 0.9 x GT-only, 1.8 x teacher
    assert [c.holds for c in check_targets(rows, limits)] == [False, False, True, False]

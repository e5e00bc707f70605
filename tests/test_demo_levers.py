"""bench/demo_levers.py's lever passes: each is the demo's own students config with only the lever changed."""

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "demo_levers", Path(__file__).resolve().parents[1] / "bench" / "demo_levers.py")
levers = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(levers)


def _students_config() -> dict:
    def row(name, sources, loss):
        return {"name": name, "student": "mobilevit-xxs", "sources": sources, "loss": loss, "seed": 3,
                "loss_options": {"kd": {"depth_loss": "silog"}} if "kd" in loss else {}}

    return {"cache": "demo/cache/teacher.zarr", "out": "demo/runs/students", "epochs": 10, "batch_size": 24,
            "seed": 3, "sources": {"labeled": "synth-train[:1500]", "aux": "synth-aux[:8000]"},
            "variant": [row("gt-only", ["labeled"], {"silog": 1.0}),
                        row("kd-labeled-aux", ["labeled", "aux"], {"silog": 1.0, "kd": 1.0})]}


def test_length_doubles_the_steps_of_gt_only_and_kd_aux_only():
    [(name, config)] = levers.lever_passes("length", _students_config())
    assert name == "length" and config["epochs"] == 20 and config["cache"] == "demo/cache/teacher.zarr"
    assert [(v["name"], v["baseline"]) for v in config["variant"]] == [
        ("gt-only 2x steps", "gt-only"), ("kd-labeled-aux 2x steps", "kd-labeled-aux")]


def test_cache_lever_changes_only_the_cache_of_the_kd_aux_row():
    base = _students_config()
    [(name, config)] = levers.lever_passes("cache:teacher12=t12.zarr", base)
    assert name == "cache-teacher12" and config["cache"] == "t12.zarr" and config["epochs"] == 10
    [variant] = config["variant"]
    assert variant == {**base["variant"][1], "name": "kd-labeled-aux on teacher12", "baseline": "kd-labeled-aux"}


def test_2x_prefix_runs_a_lever_at_twice_the_steps_paired_with_the_demo_row():
    base = _students_config()
    [(name, config)] = levers.lever_passes("2x:cache:teacher12=t12.zarr", base)
    assert name == "2x-cache-teacher12" and config["cache"] == "t12.zarr" and config["epochs"] == 20
    [variant] = config["variant"]
    assert variant["name"] == "kd-labeled-aux on teacher12 2x steps" and variant["baseline"] == "kd-labeled-aux"
    assert variant["loss"] == base["variant"][1]["loss"] and base["epochs"] == 10  # the demo's config is untouched
    passes = levers.lever_passes("2x:kd-weight", base)
    assert [v["loss"]["kd"] for _, c in passes for v in c["variant"]] == [2.0, 0.5]
    assert all(c["epochs"] == 20 for _, c in passes)


@pytest.mark.parametrize("lever", ["cache:teacher12", "2x:cache:=t12.zarr", "steps", "2x:"])
def test_a_malformed_or_unknown_lever_is_refused_in_one_line(lever):
    with pytest.raises(SystemExit) as refused:
        levers.lever_passes(lever, _students_config())
    assert "\n" not in str(refused.value)

"""ONNX export of a tiny student: parity with PyTorch, dynamic axes, int8, fail-loudly, `kdcache export`."""

import json

import numpy as np
import pytest
import torch

from helpers.eval_fixtures import SPLIT, ArraySplit, save_tiny_student
from kdcache.errors import KdcacheError
from kdcache.evaluate import EvalConfig, evaluate
from kdcache.evaluate.predictors import OnnxPredictor
from kdcache.export import export_onnx, relative_error
from kdcache.students import load_student


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return save_tiny_student(tmp_path_factory.mktemp("export") / "run")


@pytest.mark.slow
def test_kdcache_export_default_exporter_is_dynamic_and_matches_pytorch(run, run_cli, tmp_path):
    out = tmp_path / "onnx" / "student.onnx"
    code, stdout, stderr = run_cli("export", "--model", run, "--onnx", out, "--int8", "--split", SPLIT,
                                   "--json", tmp_path / "export.json")
    assert code == 0, stderr
    assert "parity vs PyTorch" in stdout and "onnxruntime" in stdout and "int8 accuracy" in stdout
    report = json.loads((tmp_path / "export.json").read_text())
    assert report["exporter"] == "dynamo" and report["opset"] == 18
    assert report["dynamic_axes"] == ["batch", "height", "width"] and report["parity_rel_error"] < 1e-3
    assert report["int8"]["accuracy"]["protocol"] == "metric"
    # The speed users choose by: onnxruntime with 2 threads at the export size, as latency and FPS.
    assert report["onnx_threads"] == 2 and report["onnx_repeats"] == 50 and "FPS" in stdout
    assert report["onnx_fps"] == pytest.approx(1e3 / report["onnx_latency_ms"]) and report["int8"]["onnx_fps"] > 0
    assert out.with_name("student.int8.onnx").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    # Another batch and an odd size, straight through the graph (no predictor's resize), against PyTorch.
    model, _ = load_student(run)
    onnx = OnnxPredictor(out)
    x = torch.rand(3, 3, 37, 83)
    with torch.no_grad():
        assert relative_error(onnx.session.run(None, {"image": x.numpy()})[0], model(x).numpy()) < 1e-3
    # The exported file is a model like any other for `evaluate`, and scores as its run does: the parity bound
    # (1e-3 of the largest depth) moves a mean of per-pixel ratios by at most about that much.
    student, exported = evaluate(EvalConfig([str(run), str(out)], ArraySplit(count=2, size=(96, 128), smooth=True),
                                                 efficiency=False))
    assert exported["kind"] == "onnx" and exported["protocol"] == student["protocol"] == "metric"
    for key in ("abs_rel", "rmse", "silog"):
        assert exported["metrics"][key] == pytest.approx(student["metrics"][key], rel=2e-3)
    # int8: report["int8"]["accuracy"]["fp32"] is the fp32 file on the split, so it must equal the run's score
    # there; dynamic int8 (per-tensor uint8 weights and activations) moves this student's AbsRel by well under
    # 5 % of itself (measured: 0.06 %), while a broken quantization (wrong scale, swapped inputs) moves it by far more.
    accuracy = report["int8"]["accuracy"]
    on_split = evaluate(EvalConfig([str(run)], SPLIT, efficiency=False))[0]
    assert accuracy["fp32"]["abs_rel"] == pytest.approx(on_split["metrics"]["abs_rel"], rel=2e-3)
    assert 0 < abs(accuracy["delta"]["abs_rel"]) < 0.05 * accuracy["fp32"]["abs_rel"]
    assert report["int8"]["size_mb"] < report["size_mb"]


def test_static_fallback_records_its_fixed_size(run, tmp_path):
    report = export_onnx(run, tmp_path / "static.onnx", exporter="torchscript-static", input_size=(32, 48))
    assert report["dynamic_axes"] == [] and report["parity_rel_error"] < 1e-3
    onnx = OnnxPredictor(tmp_path / "static.onnx")
    assert onnx.input_size == (32, 48) and onnx.predict(np.zeros((50, 70, 3), np.uint8)).shape == (32, 48)


def test_parity_failure_is_loud_and_leaves_no_file(run, tmp_path, monkeypatch):
    import kdcache.export.onnx_export as export

    monkeypatch.setattr(export, "_parity", lambda *args: 0.01)
    with pytest.raises(KdcacheError, match="differs from PyTorch"):
        export_onnx(run, tmp_path / "bad.onnx", exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_relative_error_and_cli_errors(run_cli, tmp_path):
    assert relative_error(np.array([1.0, 2.002]), np.array([1.0, 2.0])) == pytest.approx(1e-3)
    code, _, stderr = run_cli("export", "--model", tmp_path / "missing", "--onnx", tmp_path / "x.onnx")
    assert code == 2 and "does not exist" in stderr


def test_speed_is_measured_in_a_fresh_process_with_the_settings_given(run, tmp_path):
    from kdcache.export import SpeedSettings, measure_isolated

    path = tmp_path / "student.onnx"
    export_onnx(run, path, input_size=(32, 48))
    assert OnnxPredictor(path).input_size == (48, 64)  # a dynamic graph is fed the run's training size
    speed = measure_isolated(path, SpeedSettings(size=(40, 56), threads=1, warmup=1, repeats=5))
    assert speed["input_size"] == [40, 56] and speed["threads"] == 1 and speed["repeats"] == 5
    assert speed["fps"] == pytest.approx(1e3 / speed["latency_ms"]) and speed["peak_memory_mib"] >= 0
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"no model")
    with pytest.raises(KdcacheError, match="cannot load ONNX model"):
        measure_isolated(broken, SpeedSettings(repeats=1))

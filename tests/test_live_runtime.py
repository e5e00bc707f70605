"""Which runtime `kdcache live` runs a model on: a run dir is exported to ONNX once (cached) and runs on onnxruntime
when that was faster; the page is told which runtime and how many threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from kdcache.students import create_student, save_student

    torch.manual_seed(0)
    return save_student(create_student("mobilenetv3-small-lite"), tmp_path_factory.mktemp("runtime") / "student",
                        {"resolution": [60, 80]})


def test_threads_leave_the_browser_a_core(monkeypatch):
    from kdcache.live.runtime import inference_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert inference_threads() == 3 and inference_threads(2) == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0})
    assert inference_threads() == 1


def test_runtime_torch_keeps_pytorch_and_says_so(student):
    from kdcache.live.runtime import load_live_predictor

    predictor, runtime = load_live_predictor(str(student), "cpu", None, threads=1, runtime="torch")
    assert predictor.kind == "student" and runtime == "PyTorch, 1 thread" and torch.get_num_threads() == 1


@pytest.mark.slow
def test_a_run_dir_is_exported_once_and_runs_on_the_faster_runtime(student, tmp_path, monkeypatch):
    from kdcache.evaluate.predictors import load_predictor
    from kdcache.live.runtime import load_live_predictor

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    predictor, runtime = load_live_predictor(str(student), "cpu", None, threads=1)
    cached = sorted(p.suffix for p in (tmp_path / "kdcache" / "live").iterdir())
    assert cached == [".json", ".onnx"]
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    reference = load_predictor(str(student), device="cpu").predict(image)
    assert np.abs(predictor.predict(image) - reference).max() <= 1e-3 * np.abs(reference).max()
    assert runtime.startswith(("onnxruntime, 1 thread, exported", "PyTorch, 1 thread, faster than onnxruntime"))

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds this student")

    monkeypatch.setattr("kdcache.export.export_onnx", no_export)
    again, runtime_again = load_live_predictor(str(student), "cpu", None, threads=1)
    assert runtime_again == runtime and again.kind == predictor.kind

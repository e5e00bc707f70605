"""What you deploy is what you trained: a student run and its `.onnx` predict the same depth on camera frames.

A student trained at 48x64 is fed 480x640 frames through every path a user has: `kdcache infer` (checked against
an independent reference too: the frame resized by PIL as the cache's images were, the model, a bilinear resize
back), `kdcache eval` and the live engine's `process`. The student has a wide random head, so its depth depends
strongly on the pixels it is fed (a near-constant student would hide a wrong size or filter).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.eval_fixtures import ArraySplit, save_tiny_student
from kdcache.evaluate import EvalConfig, evaluate
from kdcache.infer import infer

TRAINED = (48, 64)
CAMERA = (480, 640)


def _median_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.abs(a - b) / np.abs(b)))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """(run dir, its .onnx from the default exporter, two camera-sized frames written as PNG)."""
    from kdcache.export import export_onnx

    root = tmp_path_factory.mktemp("parity")
    run = save_tiny_student(root / "run", resolution=TRAINED)
    onnx = root / "student.onnx"
    export_onnx(run, onnx, samples=1)
    frames = []
    for i, image in enumerate(ArraySplit(count=2, size=CAMERA, smooth=True).images):
        frames.append(root / f"frame{i}.png")
        Image.fromarray(image).save(frames[-1])
    return run, onnx, frames


def _infer_npy(model, frames, out) -> list[np.ndarray]:
    infer(str(model), frames, out, formats=("npy",))
    return [np.load(out / f"{frame.stem}_depth.npy") for frame in frames]


def test_infer_gives_the_same_depth_with_the_run_and_its_onnx(deployed, tmp_path):
    run, onnx, frames = deployed
    from_run, from_onnx = _infer_npy(run, frames, tmp_path / "run"), _infer_npy(onnx, frames, tmp_path / "onnx")
    for a, b in zip(from_onnx, from_run):
        assert a.shape == CAMERA and _median_rel(a, b) < 1e-3


def test_infer_resizes_a_camera_frame_as_the_cache_resized_training_images(deployed, tmp_path):
    """Reference: PIL's antialiased bilinear resize (how precompute made the training images, on uint8), the model
    at the training size, bilinear back to the frame. The only difference is PIL's rounding to 8 bits."""
    from kdcache.precompute.resize import resize_image
    from kdcache.students import load_student

    run, _, frames = deployed
    model, _ = load_student(run)
    for frame, predicted in zip(frames, _infer_npy(run, frames, tmp_path / "out")):
        small = resize_image(np.asarray(Image.open(frame)), TRAINED)
        x = torch.from_numpy(small).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            depth = model(x)
            expected = torch.nn.functional.interpolate(depth, size=CAMERA, mode="bilinear", align_corners=False)
        assert _median_rel(predicted, expected[0, 0].numpy()) < 5e-3


def test_eval_scores_the_run_and_its_onnx_alike(deployed):
    run, onnx, _ = deployed
    rows = evaluate(EvalConfig([str(run), str(onnx)], ArraySplit(count=2, size=CAMERA, smooth=True),
                               efficiency=False))
    assert [row["kind"] for row in rows] == ["student", "onnx"]
    assert rows[0]["identity"].get("input_rule") == rows[1]["identity"].get("input_rule")
    for key in ("abs_rel", "rmse", "d1"):
        assert rows[1]["metrics"][key] == pytest.approx(rows[0]["metrics"][key], rel=1e-3, abs=1e-6)


def _panel_pixels(engine, frame_bytes: bytes) -> np.ndarray:
    url = engine.process(frame_bytes)["panels"][0]["image"]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))).astype(np.float32)


def test_live_engine_shows_the_same_depth_with_the_run_and_its_onnx(deployed):
    from kdcache.live.engine import LiveEngine

    run, onnx, frames = deployed
    engines = [LiveEngine(str(model), device="cpu") for model in (run, onnx)]
    for engine in engines:
        engine.start_loading()
        assert engine.wait_loaded(60) and engine.info()["state"] == "ready"
        assert engine.info()["panels"][0]["input_size"] == list(TRAINED)
    data = frames[0].read_bytes()
    from_run, from_onnx = (_panel_pixels(engine, data) for engine in engines)
    # The same depth gives the same colours; the run-vs-.onnx difference of the bug moved them by tens of levels.
    assert from_run.shape == (*CAMERA, 3) and np.abs(from_run - from_onnx).mean() < 0.5

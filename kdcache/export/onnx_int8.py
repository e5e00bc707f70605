"""Dynamic int8 quantization of an exported student (onnxruntime.quantization.quantize_dynamic), with its cost.

Dynamic quantization stores weights as int8 and quantizes activations on the fly, so it needs no calibration
data; what it costs in accuracy is measured right away: on a labeled split (`--split`), both ONNX models are
scored with the split's protocol and the metric deltas reported; otherwise the int8 output is compared with the
fp32 output on the sample images (mean and max relative difference).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from kdcache.atomic import replacing
from kdcache.console import log
from kdcache.errors import KdcacheError


def quantize_file(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the ONNX file `source` into `target` (written whole or not at all)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root_logger = logging.getLogger()
    level = root_logger.level
    # quantize_dynamic logs "consider pre-processing" on the root logger; its symbolic shape inference
    # cannot handle dynamic H/W graphs, so the advice does not apply here.
    root_logger.setLevel(logging.ERROR)
    try:
        with replacing(target) as tmp:
            # QUInt8 weights: onnxruntime's CPU ConvInteger kernel takes uint8 x uint8 only.
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QUInt8)
    except Exception as err:  # onnxruntime.quantization raises assorted types on unsupported graphs
        raise KdcacheError(f"int8 quantization of {source} failed ({type(err).__name__}: {err}): "
                           f"export without --int8") from err
    finally:
        root_logger.setLevel(level)


def _output_difference(fp32: Path, int8: Path, inputs: torch.Tensor) -> dict:
    from kdcache.onnx_session import ort_session

    feed = {"image": inputs.numpy()}
    reference = ort_session(fp32).run(None, feed)[0]
    quantized = ort_session(int8).run(None, feed)[0]
    relative = np.abs(quantized - reference) / np.maximum(np.abs(reference), 1e-6)
    return {"on": f"{len(inputs)} sample image(s)", "mean_rel_diff_vs_fp32": float(relative.mean()),
            "max_rel_diff_vs_fp32": float(relative.max())}


def _metric_change(fp32: Path, int8: Path, split: str, root) -> dict:
    from kdcache.evaluate import EvalConfig, evaluate
    from kdcache.evaluate.predictors import OnnxPredictor

    rows = evaluate(EvalConfig([OnnxPredictor(fp32, "fp32"), OnnxPredictor(int8, "int8")], split, efficiency=False,
                               data_root=root))
    before, after = rows[0]["metrics"], rows[1]["metrics"]
    return {"on": split, "protocol": rows[0]["protocol"], "fp32": before, "int8": after,
            "delta": {key: after[key] - before[key] for key in before}}


def quantize_int8(fp32: Path, module: torch.nn.Module, inputs: torch.Tensor, split: str | None = None,
                  root=None, threads: int = 2) -> dict:
    """Write `<name>.int8.onnx` next to `fp32`; report its size, latency (onnxruntime, `threads` threads) and
    accuracy change."""
    from kdcache.data import open_split
    from kdcache.export.ort_speed import SpeedSettings, measure_onnx_speed

    target = fp32.with_name(f"{fp32.stem}.int8.onnx")
    quantize_file(fp32, target)
    speed = measure_onnx_speed(target, SpeedSettings(size=tuple(inputs.shape[-2:]), threads=threads))
    report = {"onnx": str(target), "size_mb": target.stat().st_size / 1e6,
              "onnx_latency_ms": speed["latency_ms"], "onnx_fps": speed["fps"]}
    labeled = bool(split) and open_split(split, root=root).labeled
    if split and not labeled:
        log(f"[yellow]note:[/] split '{split}' has no ground truth: int8 accuracy is compared with fp32 outputs")
    report["accuracy"] = _metric_change(fp32, target, split, root) if labeled else _output_difference(fp32, target, inputs)
    return report

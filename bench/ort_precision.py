"""Beyond fp32 on CPU: does int8 (static, calibrated on cache images) or fp16 make a student faster under ORT?

    python bench/ort_precision.py --model RUN --cache STORE [--split 'synth-test[:200]'] [--split-option size=64x96]

Writes next to the fp32 export (`kdcache export`): `.int8-static.onnx` (onnxruntime.quantization.quantize_static,
QDQ, per-channel int8 weights, uint8 activations, MinMax calibration on `--calibration` images of the cache's
first split), `.int8-dynamic.onnx` (what `kdcache export --int8` writes) and `.fp16.onnx` (onnxruntime's float16
converter, float32 input and output kept). Each is timed in a fresh process as kdcache.export.ort_speed does it
(2 threads, batch 1, 240x320, median of 50) — the three formats alternate over `--rounds` rounds so the
machine's load hits them alike — and scored on `--split` (metric protocol) against the fp32 model.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


class CacheImages:
    """onnxruntime CalibrationDataReader over the first `count` images of a kdcache store's first split."""

    def __init__(self, store: str, count: int):
        from kdcache.store import open_store

        cache = open_store(store)
        split = cache.split(cache.splits[0])
        images = split.read(0, min(count, len(split)), ["image"])["image"]
        if images.shape[-1] == 3:  # (N, H, W, 3) uint8
            images = images.transpose(0, 3, 1, 2)
        self.batches = iter([img[None].astype(np.float32) / 255.0 for img in images])

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"image": batch}


def quantize_static_int8(fp32: Path, target: Path, store: str, count: int) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = target.with_suffix(".prep.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    except Exception:  # pre-processing is an optimisation; quantize the plain export if it fails
        prepared = fp32
    quantize_static(str(prepared), str(target), CacheImages(store, count), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    if prepared != fp32:
        prepared.unlink(missing_ok=True)


def convert_fp16(fp32: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    onnx.save(model, str(target))


def quantize_dynamic_int8(fp32: Path, target: Path) -> None:
    from kdcache.export import quantize_file

    quantize_file(fp32, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained student run")
    parser.add_argument("--cache", required=True, help="teacher cache whose images calibrate int8")
    parser.add_argument("--split", default="synth-test[:200]")
    parser.add_argument("--split-option", action="append", default=["size=64x96"])
    parser.add_argument("--calibration", type=int, default=200, help="calibration images")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "precision")
    args = parser.parse_args()
    from kdcache.evaluate import EvalConfig, evaluate
    from kdcache.evaluate.predictors import OnnxPredictor
    from kdcache.export import export_onnx
    from kdcache.export import SpeedSettings, measure_isolated

    args.out.mkdir(parents=True, exist_ok=True)
    name = Path(args.model).name
    fp32 = args.out / f"{name}.onnx"
    export_onnx(args.model, fp32)
    variants = {"fp32": fp32}
    builders = {"int8-static": lambda t: quantize_static_int8(fp32, t, args.cache, args.calibration),
                "int8-dynamic": lambda t: quantize_dynamic_int8(fp32, t),
                "fp16": lambda t: convert_fp16(fp32, t)}
    for label, build in builders.items():
        target = args.out / f"{name}.{label}.onnx"
        try:
            build(target)
            variants[label] = target
        except Exception as err:  # report a format that cannot be built rather than stop the comparison
            print(f"{label}: could not be built ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
    options = dict(option.split("=", 1) for option in args.split_option)
    if "size" in options:
        from kdcache.sizes import parse_hw

        options["size"] = parse_hw(options["size"], "--split-option size")
    rows = evaluate(EvalConfig([OnnxPredictor(path, label) for label, path in variants.items()], args.split,
                               ["metric"], efficiency=False, split_options=options))
    accuracy = {label: row["metrics"] for label, row in zip(variants, rows)}
    times = {label: [] for label in variants}
    for _ in range(args.rounds):
        for label, path in variants.items():
            times[label].append(measure_isolated(path, SpeedSettings())["latency_ms"])
    base = statistics.median(times["fp32"])
    print("| format | AbsRel | δ1 | ORT ms (median of rounds; each a median of 50) | range over rounds | vs fp32 | file MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, path in variants.items():
        metrics = accuracy[label]
        ms = statistics.median(times[label])
        print(f"| {label} | {metrics['abs_rel']:.4f} | {metrics['d1']:.3f} | {ms:.1f} | "
              f"{min(times[label]):.1f}-{max(times[label]):.1f} | x{base / ms:.2f} | {path.stat().st_size / 1e6:.1f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

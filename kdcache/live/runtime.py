"""Which runtime runs a model on the live page, and with how many threads.

A `.onnx` file runs under onnxruntime. A student run dir (or `ckpt:`) is exported to ONNX on the fly and cached
(`export_onnx` checks the export against PyTorch and times both runtimes at the model's input size); the page then
runs whichever was faster, and says which. A GPU or a teacher stays on PyTorch.

Threads: the browser showing the page usually runs on the same machine, and it needs a core of its own to capture,
send and draw frames, so inference gets cores - 1 (at least 1) unless `threads` says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from kdcache.errors import KdcacheError

EXPORT_SIZE = (240, 320)  # for a student that does not record its training size


def inference_threads(threads: int | None = None) -> int:
    """The model's intra-op threads: `threads`, else every core but one (the browser's)."""
    return threads if threads else max(1, len(os.sched_getaffinity(0)) - 1)


def live_cache_dir() -> Path:
    """Where exported students are kept between runs: $XDG_CACHE_HOME/kdcache/live (~/.cache/kdcache/live)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "kdcache" / "live"


def load_live_predictor(spec: str, device: str, input_size: tuple[int, int] | None, threads: int,
                        runtime: str = "auto"):
    """(predictor, runtime description) for one panel; `runtime` is auto, onnxruntime or torch."""
    import torch

    from kdcache.evaluate.predictors import OnnxPredictor, load_predictor

    # Process-wide, and for onnxruntime too: the predictor's tensor work around the session runs on PyTorch, whose
    # idle threads spin; with more threads than `threads` they took cores from onnxruntime (2.7x slower predict).
    torch.set_num_threads(threads)
    if spec.endswith(".onnx") and Path(spec).expanduser().is_file():
        onnx = OnnxPredictor(Path(spec).expanduser(), name=spec, threads=threads, input_size=input_size)
        return onnx, _described("onnxruntime", threads)
    predictor = load_predictor(spec, device=device, input_size=input_size)
    if runtime == "torch" or predictor.kind != "student" or predictor.device.type != "cpu":
        return predictor, _described("PyTorch", threads, predictor.device)
    size = tuple(input_size or predictor.input_size or EXPORT_SIZE)
    try:
        onnx, report = exported_student(spec, size, threads)
    except KdcacheError as err:  # an architecture the exporters cannot handle still runs, on PyTorch
        if runtime == "onnxruntime":
            raise
        return predictor, _described("PyTorch", threads) + f" (no ONNX export: {str(err)[:120]})"
    if runtime == "auto" and report["torch_latency_ms"] < report["onnx_latency_ms"]:
        return predictor, _described("PyTorch", threads) + (
            f", faster than onnxruntime ({report['torch_latency_ms']:.0f} vs {report['onnx_latency_ms']:.0f} ms)")
    # fed exactly as the PyTorch student would be (kdcache.model_input): its input size, through the same rule
    ort = OnnxPredictor(onnx, name=spec, threads=threads, input_size=predictor.input_size)
    return ort, _described("onnxruntime", threads) + (
        f", exported on the fly: {report['onnx_latency_ms']:.0f} ms vs PyTorch {report['torch_latency_ms']:.0f} ms")


def exported_student(spec: str, size: tuple[int, int], threads: int) -> tuple[Path, dict]:
    """The cached ONNX export of a student at `size` and its export report (latencies of both runtimes); exported
    now if the cache has none for these exact weights."""
    from kdcache.export import export_onnx
    from kdcache.students.checkpoint import find_checkpoint

    weights = find_checkpoint(Path(spec[5:] if spec.startswith("ckpt:") else spec).expanduser())
    digest = hashlib.sha256(weights.read_bytes())
    description = weights.parent / "student.json"
    digest.update(description.read_bytes() if description.is_file() else b"")
    key = f"{digest.hexdigest()[:20]}-{size[0]}x{size[1]}-t{threads}"
    onnx, report_path = live_cache_dir() / f"{key}.onnx", live_cache_dir() / f"{key}.json"
    if onnx.is_file() and report_path.is_file():
        return onnx, json.loads(report_path.read_text())
    from kdcache.atomic import write_text
    from kdcache.console import log

    log(f"kdcache live: exporting {spec} to ONNX at {size[0]}x{size[1]} (once; cached in {live_cache_dir()})")
    onnx.parent.mkdir(parents=True, exist_ok=True)
    report = export_onnx(weights.parent, onnx, input_size=size, threads=threads)
    write_text(report_path, json.dumps(report))
    return onnx, report


def _described(name: str, threads: int, device=None) -> str:
    where = f" on {device}" if device is not None and device.type != "cpu" else ""
    return f"{name}{where}, {threads} thread{'s' if threads != 1 else ''}"

"""How fast an exported student runs under onnxruntime on CPU: latency, FPS and peak memory at one input size.

These are the figures users choose a student by (`kdcache export` prints them, `bench/pareto.py` plots them):
onnxruntime's CPU provider with `threads` intra-op threads, batch 1, the median of `repeats` timed runs after
`warmup` untimed ones. Peak memory is the process's peak RSS (VmHWM, reset via /proc/self/clear_refs) above its
RSS before the session was created: weights, onnxruntime's arena and activations. `measure_isolated` runs the
measurement in a fresh interpreter so earlier models leave nothing behind in the allocator or the thread pools.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kdcache.errors import KdcacheError
from kdcache.onnx_session import ort_session
from kdcache.process_memory import proc_status, reset_peak_rss
from kdcache.timing import timed_seconds

MIB = 2**20


@dataclass(frozen=True)
class SpeedSettings:
    """The one place the speed protocol's defaults live (2 threads, batch 1, 240x320, median of 50)."""

    size: tuple[int, int] = (240, 320)
    threads: int = 2
    warmup: int = 10
    repeats: int = 50


def _input_array(session, size: tuple[int, int]) -> np.ndarray:
    """One smooth random image at `size` (or at the model's fixed size), in the model's input dtype."""
    spec = session.get_inputs()[0]
    dims = [d if isinstance(d, int) else None for d in spec.shape]
    height, width = dims[2] or size[0], dims[3] or size[1]
    rng = np.random.default_rng(0)
    coarse = rng.random((3, max(2, height // 16), max(2, width // 16)), dtype=np.float32)
    image = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)[:, :height, :width]
    image = np.pad(image, ((0, 0), (0, height - image.shape[1]), (0, width - image.shape[2])), mode="edge")
    dtype = np.float16 if "float16" in spec.type else np.float32
    return image[None].astype(dtype)


def measure_onnx_speed(path: str | os.PathLike, settings: SpeedSettings = SpeedSettings()) -> dict:
    """Latency (median ms), FPS and peak memory of one ONNX model in this process."""
    rss_before = proc_status("VmRSS")
    peak_reset = reset_peak_rss()
    session = ort_session(path, settings.threads)
    feed = {session.get_inputs()[0].name: _input_array(session, settings.size)}
    times = timed_seconds(lambda: session.run(None, feed), settings.repeats, settings.warmup)
    peak = proc_status("VmHWM") if peak_reset else None
    median = statistics.median(times)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [median] * 3
    return {
        "onnx": str(path), "input_size": list(feed[next(iter(feed))].shape[-2:]), "threads": settings.threads,
        "repeats": settings.repeats, "latency_ms": 1e3 * median, "fps": 1.0 / median,
        "latency_iqr_ms": [1e3 * quartiles[0], 1e3 * quartiles[2]], "latency_min_ms": 1e3 * min(times),
        "peak_memory_mib": None if peak is None or rss_before is None else max(peak - rss_before, 0) / MIB,
    }


def measure_isolated(path: str | os.PathLike, settings: SpeedSettings = SpeedSettings()) -> dict:
    """`measure_onnx_speed` in a fresh Python process (clean allocator, no other thread pools)."""
    argv = [sys.executable, "-m", "kdcache.export.ort_speed", str(path), json.dumps(asdict(settings))]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise KdcacheError(f"measuring {path} failed: {lines[-1] if lines else 'no output'}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _main(argv: list[str]) -> None:
    path, raw = argv[0], json.loads(argv[1])
    raw["size"] = tuple(raw["size"])
    print(json.dumps(measure_onnx_speed(Path(path), SpeedSettings(**raw))))


if __name__ == "__main__":
    _main(sys.argv[1:])

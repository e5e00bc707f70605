"""Efficiency of a predictor on the current device: parameters, GFLOPs, latency, throughput, peak memory.

- GFLOPs: `torch.utils.flop_counter.FlopCounterMode` over one batch-1 forward at the eval resolution
  (matmul / conv / attention ops; 1 multiply-add = 2 FLOPs; element-wise ops are not counted).
- Latency: median wall time of batch-1 forwards after warm-up (CUDA synchronised).
- Throughput: images/s at batch 32, halved while it does not fit (CUDA OOM, CPU allocation failure, or
  an estimate from the batch-1 peak above 80 % of MemAvailable).
- Peak memory: CUDA `max_memory_allocated` above the memory allocated before the forward. On CPU,
  tracemalloc does not see torch's allocator and RSS deltas read ~0 once the allocator holds freed pages
  from an earlier, bigger model, so we replay torch.profiler's memory events (every allocation and free
  of torch's CPU allocator, in time order, at operator granularity) and report the peak of live bytes.
  If the profiler is unavailable: the kernel's peak RSS (VmHWM reset via `/proc/self/clear_refs`)
  above the RSS before the forward.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdcache.evaluate.predictors import Predictor
from kdcache.process_memory import proc_field, proc_status, reset_peak_rss
from kdcache.timing import machine_load, median_seconds

MIB = 2**20


def count_flops(predictor: Predictor, size: tuple[int, int]) -> float:
    """FLOPs of one batch-1 forward at `size` (H, W)."""
    x = torch.rand(1, 3, *size, device=predictor.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        predictor.forward(x)
    return float(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_forward(predictor: Predictor, batch: int, size: tuple[int, int], warmup: int, repeats: int) -> float:
    """Median seconds of one forward of `batch` random images after `warmup` untimed ones."""
    x = torch.rand(batch, 3, *size, device=predictor.device)

    def forward() -> None:
        predictor.forward(x)
        _sync(predictor.device)

    return median_seconds(forward, repeats, warmup)


@torch.no_grad()
def peak_memory(predictor: Predictor, size: tuple[int, int], batch: int = 1) -> tuple[float, str]:
    """(MiB above the pre-forward level at the peak of one forward, method used)."""
    x = torch.rand(batch, 3, *size, device=predictor.device)
    if predictor.device.type == "cuda":
        torch.cuda.synchronize(predictor.device)
        before = torch.cuda.memory_allocated(predictor.device)
        torch.cuda.reset_peak_memory_stats(predictor.device)
        predictor.forward(x)
        torch.cuda.synchronize(predictor.device)
        return (torch.cuda.max_memory_allocated(predictor.device) - before) / MIB, "cuda max_memory_allocated"
    try:
        return _profiled_cpu_peak(predictor, x) / MIB, "torch CPU allocator peak (torch.profiler memory events)"
    except Exception:  # profiler unavailable in this build: fall back to the kernel's counters
        pass
    if reset_peak_rss() and proc_status("VmRSS") is not None:
        before = proc_status("VmRSS")
        predictor.forward(x)
        return max(proc_status("VmHWM") - before, 0) / MIB, "process peak RSS (VmHWM reset via clear_refs)"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    predictor.forward(x)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) * 1024 / MIB, "ru_maxrss delta (lower bound)"


@contextlib.contextmanager
def _quiet_stderr_fd():
    """Silence fd 2 (kineto prints start/stop banners from C++); Python exceptions are unaffected."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _profiled_cpu_peak(predictor: Predictor, x: torch.Tensor) -> int:
    """Peak bytes of live tensors during one forward, replaying the profiler's allocation events in order."""
    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    with _quiet_stderr_fd(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        predictor.forward(x)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def _fits_on_cpu(batch: int, peak_batch1_mib: float) -> bool:
    available = _meminfo("MemAvailable")
    return available is None or batch * peak_batch1_mib * MIB < 0.8 * available


def _meminfo(field: str) -> int | None:
    return proc_field("/proc/meminfo", field)


SLOW_BATCH_S = 20.0  # above this estimated time per batch, one timed batch (no extra warm-up) is enough


def throughput(predictor: Predictor, size: tuple[int, int], batch: int, peak_batch1_mib: float,
               repeats: int, latency_s: float = 0.0) -> tuple[float, int]:
    """(images per second, batch actually used), halving the batch until it fits in memory.

    A big teacher on CPU (e.g. DPT-Large: ~10 s per image) would need many minutes for warm-up plus
    several timed batches of 32; the batch-1 runs already warmed it up, so it gets one timed batch.
    """
    while batch > 1 and predictor.device.type == "cpu" and not _fits_on_cpu(batch, peak_batch1_mib):
        batch //= 2
    while True:
        slow = latency_s * batch > SLOW_BATCH_S
        try:
            seconds = time_forward(predictor, batch, size, warmup=0 if slow else 1, repeats=1 if slow else repeats)
            return batch / seconds, batch
        except (torch.OutOfMemoryError, RuntimeError) as err:
            if batch == 1 or "memory" not in str(err).lower():
                raise
            if predictor.device.type == "cuda":
                torch.cuda.empty_cache()
            batch //= 2


def measure_efficiency(predictor: Predictor, size: tuple[int, int], throughput_batch: int = 32,
                       warmup: int = 3, repeats: int = 10) -> dict:
    """All efficiency figures of `predictor` at input `size` (H, W) on its device, as one JSON-able dict."""
    size = tuple(int(v) for v in (predictor.input_size or size))
    params = predictor.params
    # A probe forward sizes the run: a model taking seconds per image (a ViT-L teacher on CPU) gets 3 timed runs.
    probe = time_forward(predictor, 1, size, warmup=1, repeats=1)
    if probe > 2.0:
        warmup, repeats = 0, 3
    latency = time_forward(predictor, 1, size, warmup=max(warmup - 2, 0), repeats=repeats)
    peak_mib, method = peak_memory(predictor, size)
    flops = count_flops(predictor, size)
    result = {
        "device": _device_name(predictor.device),
        "input_size": list(size),
        "params": params,
        "params_m": None if params is None else params / 1e6,
        "gflops": flops / 1e9,
        "gmacs": flops / 2e9,  # what FastDepth / Hu et al. / timm tables call "GFLOPs"
        "latency_ms": latency * 1e3,
        "peak_memory_mib": peak_mib,
        "memory_method": method,
        "threads": torch.get_num_threads(),
    }
    if throughput_batch > 0:
        images_per_s, batch = throughput(predictor, size, throughput_batch, peak_mib, max(3, repeats // 3), latency)
        result.update(throughput_ips=images_per_s, throughput_batch=batch)
    result["machine"] = machine_load().as_dict()  # how busy the machine was while these figures were timed
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"

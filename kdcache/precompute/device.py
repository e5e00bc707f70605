"""How the teacher's device overlaps with the host: uploads, asynchronous downloads, busy time.

The precompute loop launches batch k+1 (and k+2) before it consumes batch k, so the teacher's device always
has queued work while the host assembles and writes shards. That only holds if nothing in between waits for
the device, so each runtime gives the loop the same three operations:

- `upload(tensor)`: host -> device without blocking the host (pinned memory, `non_blocking` on CUDA);
- `download(tensors) -> Download`: device -> host copies queued behind the work that produces them (a side
  stream into pinned memory on CUDA); `Download.wait()` is the one place the host waits, for that batch only;
- `forward()`: a context around the teacher's forward that measures the device's busy time.

`CudaRuntime` does this with streams and events; `EmulatedRuntime` with the virtual device of an `emulated:N`
teacher; `HostRuntime` (CPU) computes everything when it is called, so there is nothing to overlap.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch


class Download:
    """Host copies of one batch's outputs; `wait()` returns them as numpy arrays once they have arrived."""

    def __init__(self, values: dict[str, torch.Tensor], wait=None, busy=None, shared: bool = False):
        self._values, self._wait, self._busy, self._shared = values, wait, busy, shared

    def wait(self) -> dict[str, np.ndarray]:
        """The batch's arrays (read-only when they share memory with something else: copy before writing)."""
        if self._wait is not None:
            self._wait()
        arrays = {name: value.numpy() for name, value in self._values.items()}
        if self._shared:
            for array in arrays.values():
                array.flags.writeable = False
        return arrays

    def busy_seconds(self) -> float:
        """Device time of the batch's teacher forward (valid after `wait`)."""
        return self._busy() if self._busy is not None else 0.0


class HostRuntime:
    """CPU teacher: everything runs when it is called."""

    asynchronous = False  # work queued on the device runs while the host goes on

    def __init__(self, device: torch.device):
        self.device = device
        self._busy = 0.0

    def upload(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device)

    @contextlib.contextmanager
    def forward(self):
        start = time.perf_counter()
        yield
        self._busy = time.perf_counter() - start

    def download(self, tensors: dict[str, torch.Tensor]) -> Download:
        busy, self._busy = self._busy, 0.0
        return Download({name: value.cpu() for name, value in tensors.items()}, busy=lambda: busy)

    @property
    def pin_memory(self) -> bool:
        return False


class CudaRuntime(HostRuntime):
    """Uploads from pinned memory, downloads on a side stream into pinned memory, one event per batch."""

    asynchronous = True

    def __init__(self, device: torch.device):
        super().__init__(device)
        self._side = torch.cuda.Stream(device)
        self._events: tuple | None = None

    @property
    def pin_memory(self) -> bool:
        return True

    def upload(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, non_blocking=True)

    @contextlib.contextmanager
    def forward(self):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        self._events = (start, end)

    def download(self, tensors: dict[str, torch.Tensor]) -> Download:
        timing, self._events = self._events, None
        self._side.wait_stream(torch.cuda.current_stream(self.device))
        hosts = {}
        with torch.cuda.stream(self._side):
            for name, value in tensors.items():
                host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
                host.copy_(value, non_blocking=True)
                value.record_stream(self._side)  # the caching allocator must not reuse it before the copy ends
                hosts[name] = host
        done = torch.cuda.Event()
        done.record(self._side)
        busy = (lambda: timing[0].elapsed_time(timing[1]) / 1000) if timing else None
        return Download(hosts, wait=done.synchronize, busy=busy)


class EmulatedRuntime(HostRuntime):
    """The virtual device of an `emulated:N` teacher: downloads are ready when its outputs are."""

    asynchronous = True

    def __init__(self, device: torch.device, vdev):
        super().__init__(device)
        self.vdev = vdev

    def upload(self, tensor: torch.Tensor) -> torch.Tensor:
        from kdcache.teachers.emulated import on_device

        return on_device(tensor, self.vdev)

    @contextlib.contextmanager
    def forward(self):
        before = self.vdev.busy_s
        yield
        self._busy = self.vdev.busy_s - before

    def download(self, tensors: dict[str, torch.Tensor]) -> Download:
        from kdcache.teachers.emulated import host_copy

        ready = max((getattr(value, "ready_at", 0.0) for value in tensors.values()), default=0.0)
        hosts = {name: host_copy(value) for name, value in tensors.items()}
        busy, self._busy = self._busy, 0.0
        return Download(hosts, wait=lambda: self.vdev.wait_until(ready), busy=lambda: busy, shared=True)


def runtime_for(teacher, device: torch.device) -> HostRuntime:
    vdev = getattr(teacher, "vdev", None)
    if vdev is not None:
        return EmulatedRuntime(device, vdev)
    if device.type == "cuda":
        return CudaRuntime(device)
    return HostRuntime(device)

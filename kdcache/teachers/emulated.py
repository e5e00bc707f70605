"""`emulated:N`: a GPU teacher emulated on any machine, for measuring the pipeline around the teacher.

It behaves like a CUDA teacher seen from the host. `predict` queues the work and returns at once; the
outputs live on a virtual device (one stream: batches run one after another) and become ready N ms per
image after the device is free. Device-side work on them (pooling, PCA projection, casts, finiteness
checks) costs neither host nor device time: the tensors are `meta` tensors, shapes only, as on a GPU where
that work is ~1 % of a DPT-Large forward. Anything that needs their values on the host (`.cpu()`,
`.numpy()`, `.tolist()`, `.item()`, `bool()`, boolean-mask indexing, a blocking copy) first waits until
they are ready, exactly as a CUDA synchronisation would, and then sees synthetic values with realistic
statistics (smooth positive depth, Gaussian features), so compression downstream costs what it would.
A pipeline that synchronises early therefore pays the wait.

The outputs have DPT-Large's shapes: depth at the input (cache) size, and the neck's four fused maps of 256
channels at 24, 48, 96 and 192 pixels square (the ViT-L/16 patch grid of a 384x384 input, upsampled x2 by
each fusion stage; `Intel/dpt-large`'s config), plus its four ViT taps (1024 channels, 24x24).
"""

from __future__ import annotations

import threading
import time
from typing import Iterable

import numpy as np
import torch

from kdcache.errors import KdcacheError
from kdcache.teachers.base import TeacherOutput

NECK = {f"neck_{i}": (256, 24 * 2**i, 24 * 2**i) for i in range(4)}
VIT_TAPS = {f"hidden_{k}": (1024, 24, 24) for k in (6, 12, 18, 24)}
DPT_LARGE_PARAMS = 343_000_000

# Tensor methods whose result is host data: they wait for the device (a CUDA sync) before running.
_HOST_METHODS = {
    "tolist", "item", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "__array__",
    "nonzero", "argwhere", "masked_select", "unique", "equal", "allclose",
}


class VirtualDevice:
    """One emulated GPU stream: when it is free, how long it was busy, and how often the host waited."""

    def __init__(self):
        self._lock = threading.Lock()
        self.free_at = 0.0
        self.busy_s = 0.0
        self.host_waits = 0

    def run(self, seconds: float) -> float:
        """Queue `seconds` of work; returns the time its results are ready."""
        with self._lock:
            start = max(self.free_at, time.perf_counter())
            self.free_at = start + seconds
            self.busy_s += seconds
            return self.free_at

    def wait_until(self, ready_at: float) -> None:
        """Block the calling host thread until `ready_at` (what a CUDA event or stream sync does)."""
        with self._lock:
            self.host_waits += 1
        delay = ready_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    def synchronize(self) -> None:
        self.wait_until(self.free_at)


class EmulatedTensor(torch.Tensor):
    """A `meta` tensor on a `VirtualDevice`, ready at `ready_at` (see the module docstring).

    Small tensors (per-sample flags, masks, scalars: at most `SMALL` elements) also carry their real values,
    computed on the host from their inputs (large inputs stand in as synthetic values), so the logic a pipeline
    builds from them (which samples are finite, which to zero) sees consistent values; large ones carry none.
    """

    ready_at: float
    vdev: VirtualDevice
    value: torch.Tensor | None

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = [a for a in _leaves((args, kwargs)) if isinstance(a, EmulatedTensor)]
        with torch._C.DisableTorchFunctionSubclass():
            if not inputs:
                return func(*args, **kwargs)
            vdev, ready = inputs[0].vdev, max(t.ready_at for t in inputs)
            if _needs_host_values(func, args, kwargs):
                vdev.wait_until(ready)
                return _run_on_host(func, args, kwargs)
            try:
                result = _meta_call(func, args, kwargs)
            except (NotImplementedError, RuntimeError):  # a data-dependent shape: the GPU would sync here too
                vdev.wait_until(ready)
                return _run_on_host(func, args, kwargs)
            tensors = [t for t in _leaves(result) if isinstance(t, torch.Tensor)]
            if not tensors:  # shapes, dtypes, sizes: known on the host without waiting
                return result
            values = None
            known = all(t.value is not None for t in inputs) and not any(
                isinstance(a, torch.Tensor) and a.device.type == "meta" and not isinstance(a, EmulatedTensor)
                for a in _leaves((args, kwargs)))
            if known and all(t.numel() <= SMALL for t in tensors):
                values = _run_on_host(func, args, kwargs, in_place_on_values=True)
        return _wrap(result, values, ready, vdev)


SMALL = 1 << 16


def emulated(meta: torch.Tensor, ready_at: float, vdev: VirtualDevice, value: torch.Tensor | None = None):
    tensor = meta.as_subclass(EmulatedTensor)
    tensor.ready_at, tensor.vdev, tensor.value = ready_at, vdev, value
    return tensor


def _leaves(tree):
    if isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _leaves(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _leaves(item)
    else:
        yield tree


def _map(tree, fn):
    if isinstance(tree, tuple):
        return tuple(_map(item, fn) for item in tree)
    if isinstance(tree, list):
        return [_map(item, fn) for item in tree]
    if isinstance(tree, dict):
        return {key: _map(item, fn) for key, item in tree.items()}
    return fn(tree)


def _needs_host_values(func, args, kwargs) -> bool:
    """Would this call synchronise a CUDA device? (host results, blocking copies, boolean-mask indexing)."""
    name = getattr(func, "__name__", "")
    if name in _HOST_METHODS:
        return True
    if name == "to":
        return any(_is_device(a) and torch.device(a).type != "meta" for a in _leaves((args[1:], kwargs)))
    if name == "copy_":
        return not isinstance(args[0], EmulatedTensor)
    if name in ("__getitem__", "__setitem__", "index_put_", "index_put"):
        index = args[1] if len(args) > 1 else kwargs.get("indices")
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in _leaves(index))
    return False


def _is_device(value) -> bool:
    if isinstance(value, torch.device):
        return True
    if not isinstance(value, str):
        return False
    try:
        torch.device(value)
    except RuntimeError:
        return False
    return True


_META_CACHE: dict = {}


def _meta_call(func, args, kwargs):
    """`func` on meta stand-ins of the arguments. Memoised by the arguments' shapes, strides and dtypes: torch's
    meta kernels are partly Python (milliseconds for an interpolation) and the loop repeats the same calls."""
    meta_args, meta_kwargs = _map((args, kwargs), _as_meta)
    flat = [a for a in _leaves((meta_args, meta_kwargs)) if isinstance(a, torch.Tensor)]
    key = _signature(func, (meta_args, meta_kwargs))
    template = _META_CACHE.get(key) if key is not None else None
    if template is None:
        result = func(*meta_args, **meta_kwargs)
        if key is not None and isinstance(result, torch.Tensor):
            _META_CACHE[key] = _template(result, flat)
        return result
    return _instantiate(template, flat)


def _signature(func, tree):
    def part(value):
        if isinstance(value, torch.Tensor):
            return ("tensor", tuple(value.shape), value.stride(), value.dtype)
        if isinstance(value, slice):
            return ("slice", value.start, value.stop, value.step)
        hash(value)
        return value

    try:
        return (func, repr(_map(tree, part)))
    except TypeError:
        return None


def _template(result: torch.Tensor, inputs: list):
    for position, tensor in enumerate(inputs):
        if result is tensor:
            return ("input", position)
    return ("new", tuple(result.shape), result.stride(), result.dtype)


def _instantiate(template, inputs: list):
    if template[0] == "input":
        return inputs[template[1]]
    return torch.empty_strided(template[1], template[2], dtype=template[3], device="meta")


def _as_meta(value):
    return value.to("meta") if isinstance(value, torch.Tensor) and value.device.type != "meta" else value


def _host_value(value):
    """What an emulated (or plain meta) tensor holds, seen from the host: its real value, or synthetic values."""
    if isinstance(value, EmulatedTensor) and value.value is not None:
        return value.value
    if isinstance(value, torch.Tensor) and value.device.type == "meta":
        return synthetic(tuple(value.shape), value.dtype)
    return value


def _wrap(result, values, ready_at: float, vdev: VirtualDevice):
    if isinstance(result, torch.Tensor) and result.device.type == "meta":
        value = values if isinstance(values, torch.Tensor) else None
        if value is None and result.numel() <= SMALL:  # computed from synthetic inputs: synthetic, but fixed now
            value = synthetic(tuple(result.shape), result.dtype)
        if isinstance(result, EmulatedTensor):  # an in-place op returned its input: update it
            result.ready_at, result.value = ready_at, value if value is not None else result.value
            return result
        return emulated(result, ready_at, vdev, value)
    if isinstance(result, (tuple, list)):
        parts = values if isinstance(values, (tuple, list)) else [None] * len(result)
        return type(result)(_wrap(r, v, ready_at, vdev) for r, v in zip(result, parts))
    return result


def _run_on_host(func, args, kwargs, in_place_on_values: bool = False):
    """Run `func` on host values: real ones for small emulated tensors, synthetic ones for large ones.

    A write into device memory (`copy_`, `__setitem__`, in-place ops) lands in a small tensor's value; a large
    device tensor keeps no values, so the write is dropped.
    """
    host_args, host_kwargs = _map((args, kwargs), _host_value)
    result = func(*host_args, **host_kwargs)
    name = getattr(func, "__name__", "")
    in_place = name.endswith("_") or name == "__setitem__" or (name.startswith("__i") and name != "__index__")
    if in_place and args and isinstance(args[0], EmulatedTensor):
        return result if in_place_on_values else args[0]
    return result


_SYNTHETIC: dict[tuple, torch.Tensor] = {}
_SYNTHETIC_LOCK = threading.Lock()


def synthetic(shape: tuple[int, ...], dtype: torch.dtype, copy: bool = True) -> torch.Tensor:
    """Host values standing in for a device tensor: booleans True, (B, H, W) maps smooth and positive (depth),
    Gaussian otherwise (features). Generated once per shape and dtype, then copied (unless `copy=False`)."""
    key = (shape, dtype)
    with _SYNTHETIC_LOCK:
        if key not in _SYNTHETIC:
            _SYNTHETIC[key] = _make_synthetic(shape, dtype)
    return _SYNTHETIC[key].clone() if copy else _SYNTHETIC[key]


def _make_synthetic(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    if len(shape) == 3:  # (B, H, W): a depth map, a smooth positive field in [0.5, 10]
        coarse = torch.rand(shape[0], 1, 8, 8, generator=generator)
        smooth = torch.nn.functional.interpolate(coarse, size=shape[1:], mode="bicubic", align_corners=False)
        values = 0.5 + 9.5 * smooth.clamp(0, 1).reshape(shape)
    else:  # features, flags' float views, ...: Gaussian
        values = torch.randn(shape, generator=generator)
    return values.to(dtype)


class EmulatedTeacher:
    """DPT-Large's interface and output shapes, `ms_per_image` of virtual GPU time per image (module docstring)."""

    output_space = "disparity"
    feature_layers = [*VIT_TAPS, *NECK]
    default_feature_layers = list(NECK)
    licence = None
    params = DPT_LARGE_PARAMS
    precision = "bf16"

    def __init__(self, ms_per_image: float):
        self.ms_per_image = float(ms_per_image)
        self.name = f"emulated:{ms_per_image:g}"
        self.device = torch.device("cpu")  # inputs stay host tensors; outputs are on the virtual device
        self.vdev = VirtualDevice()
        self.identity = {"name": self.name, "emulates": "Intel/dpt-large", "ms_per_image": self.ms_per_image}
        # torch's meta kernels for interpolation and pooling are Python, imported on first use (seconds): pay
        # for that here, as a GPU teacher pays for its CUDA context when it loads
        grid = torch.nn.functional.interpolate(torch.empty(1, 1, 2, 2, device="meta"), size=(3, 3), mode="bilinear")
        torch.nn.functional.adaptive_avg_pool2d(grid, (2, 2))
        self.preprocess = {"size_rule": "fixed", "size": [384, 384], "note": "emulated: no preprocessing runs"}

    def predict(self, images: torch.Tensor, layers: Iterable[str] = ()) -> TeacherOutput:
        layers = list(layers)
        unknown = [layer for layer in layers if layer not in self.feature_layers]
        if unknown:
            raise KdcacheError(f"teacher '{self.name}' has no feature layer {unknown}: choose from "
                               f"{', '.join(self.feature_layers)}")
        batch, _, height, width = images.shape
        ready = self.vdev.run(self.ms_per_image * batch / 1000)
        shapes = {**VIT_TAPS, **NECK}
        depth = emulated(torch.empty(batch, height, width, device="meta"), ready, self.vdev)
        features = {layer: emulated(torch.empty(batch, *shapes[layer], device="meta"), ready, self.vdev)
                    for layer in layers}
        return TeacherOutput(depth, features)

    def synchronize(self) -> None:
        self.vdev.synchronize()

    def describe(self) -> dict:
        return {"name": self.name, "output_space": self.output_space, "preprocess": self.preprocess,
                "feature_layers": list(self.feature_layers), "default_feature_layers": self.default_feature_layers,
                "licence": None, "params": self.params, "identity": self.identity}

    def __repr__(self) -> str:
        return f"EmulatedTeacher({self.ms_per_image:g} ms/image)"


def create_emulated_teacher(ms: str) -> EmulatedTeacher:
    try:
        value = float(ms)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise KdcacheError(f"bad emulated teacher 'emulated:{ms}': give milliseconds per image, e.g. emulated:4")
    return EmulatedTeacher(value)


def on_device(tensor: torch.Tensor, vdev: VirtualDevice) -> EmulatedTensor:
    """A host-to-device copy: the device tensor keeps the values of a small tensor, only the shape of a large one."""
    value = tensor.clone() if tensor.numel() <= SMALL else None
    return emulated(torch.empty(tensor.shape, dtype=tensor.dtype, device="meta"), time.perf_counter(), vdev, value)


def host_copy(value: torch.Tensor) -> torch.Tensor:
    """A non-blocking device-to-host copy, which a GPU's copy engine does without the host: large tensors come
    back as the shared synthetic values themselves (read them only; the caller treats them as arrived once the
    device has finished, as it would after a CUDA event)."""
    with torch._C.DisableTorchFunctionSubclass():
        if isinstance(value, EmulatedTensor):
            if value.value is not None:
                return value.value.clone()
            return synthetic(tuple(value.shape), value.dtype, copy=False)
        return value.cpu()

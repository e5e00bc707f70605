"""`export_onnx`: a student as an ONNX file that onnxruntime runs on CPU and mobile, verified against PyTorch.

Exporter: torch's dynamo exporter (`torch.onnx.export(dynamo=True)`, the default of torch >= 2.9) at opset 18
with batch, height and width dynamic; it traces the shape arithmetic of students such as MobileViT
symbolically, where the TorchScript exporter bakes the export size into Reshape nodes. If it fails, the
TorchScript exporter (opset 17) is tried with the same dynamic axes, then with a fixed input size. Every
candidate is run by onnxruntime at the export size, at batch 2 and at another size; a dimension is only
declared dynamic if that check passed. Opsets 17/18 run on onnxruntime >= 1.14 (CPU and mobile builds).

The file is written to a temp name and renamed into place only after the parity check
(max |onnx - torch| / max |torch| < 1e-3) passed, so a failed export never leaves a wrong model behind.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from kdcache.atomic import replacing
from kdcache.console import log
from kdcache.errors import KdcacheError, check_writable, disk_error, writing_to
from kdcache.export.ort_speed import SpeedSettings, measure_onnx_speed
from kdcache.onnx_session import ort_session
from kdcache.timing import machine_load, median_seconds

PARITY_TOLERANCE = 1e-3  # relative: max |onnx - torch| / max |torch|
DYNAMO_OPSET, TORCHSCRIPT_OPSET = 18, 17


class _ImageToDepth(torch.nn.Module):
    """The exported graph: (B,3,H,W) float RGB in [0,1] -> (B,1,H,W) student output (normalisation inside)."""

    def __init__(self, student: torch.nn.Module):
        super().__init__()
        self.student = student

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.student(image)


def _export_dynamo(module, example, path: Path, dynamic: bool) -> None:
    shapes = None
    if dynamic:
        dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
        shapes = {"image": dims}
    torch.onnx.export(module, (example,), str(path), input_names=["image"], output_names=["depth"], dynamo=True,
                      dynamic_shapes=shapes, opset_version=DYNAMO_OPSET, external_data=False, verbose=False)


def _export_torchscript(module, example, path: Path, dynamic: bool) -> None:
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "depth": {0: "batch", 2: "height", 3: "width"}}
    torch.onnx.export(module, (example,), str(path), input_names=["image"], output_names=["depth"], dynamo=False,
                      dynamic_axes=axes if dynamic else None, opset_version=TORCHSCRIPT_OPSET)


EXPORTERS = {  # name -> (function, dynamic, opset), tried in this order by exporter="auto"
    "dynamo": (_export_dynamo, True, DYNAMO_OPSET),
    "torchscript": (_export_torchscript, True, TORCHSCRIPT_OPSET),
    "torchscript-static": (_export_torchscript, False, TORCHSCRIPT_OPSET),
}


def relative_error(onnx_out: np.ndarray, torch_out: np.ndarray) -> float:
    """max |onnx - torch| / max |torch| (the parity figure reported and checked against 1e-3)."""
    return float(np.abs(onnx_out - torch_out).max() / max(float(np.abs(torch_out).max()), 1e-12))


@torch.no_grad()
def _parity(session, module, inputs: list[torch.Tensor]) -> float:
    """Worst relative error over `inputs`; raises whatever onnxruntime raises on a shape it cannot run."""
    worst = 0.0
    for x in inputs:
        out = session.run(None, {"image": x.numpy()})[0]
        ref = module(x).numpy()
        if out.shape != ref.shape:
            raise RuntimeError(f"ONNX output shape {out.shape} != PyTorch {ref.shape}")
        worst = max(worst, relative_error(out, ref))
    return worst


def _probe_inputs(samples: torch.Tensor, dynamic: bool) -> list[torch.Tensor]:
    """The sample batch, then (if dynamic) batch 2 and a different, odd size to prove the axes really are dynamic."""
    if not dynamic:  # a fixed graph takes batch 1 at the export size only
        return [samples[i:i + 1] for i in range(len(samples))]
    h, w = samples.shape[-2:]
    other = torch.nn.functional.interpolate(samples[:2], size=(h + 13, w + 7), mode="bilinear", align_corners=False)
    return [samples[:1], samples, other]


def _try_exporters(module, samples: torch.Tensor, tmp: Path, exporter: str) -> tuple[str, float]:
    names = list(EXPORTERS) if exporter == "auto" else [exporter]
    failures = []
    for name in names:
        if name not in EXPORTERS:
            raise KdcacheError(f"unknown exporter '{name}': use auto, {', '.join(EXPORTERS)}")
        function, dynamic, _ = EXPORTERS[name]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                function(module, samples[:1], tmp, dynamic)
            error = _parity(ort_session(tmp), module, _probe_inputs(samples, dynamic))
        except Exception as err:  # exporter and runtime failures have many types; the next exporter may work
            if disk_error(err) is not None:  # a full or read-only disk fails every exporter: say so instead
                raise disk_error(err) from None
            failures.append(f"{name}: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}")
            log(f"[yellow]note:[/] ONNX exporter {name} failed ({failures[-1]}); trying the next one")
            continue
        if error >= PARITY_TOLERANCE:
            raise KdcacheError(f"ONNX output differs from PyTorch by {error:.2e} relative (limit {PARITY_TOLERANCE:g}) "
                               f"with the {name} exporter: report this student's architecture as an export bug")
        return name, error
    raise KdcacheError(f"no ONNX exporter could export this student ({'; '.join(failures)}): "
                       f"try --exporter torchscript-static or report the architecture")


def _write_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, str(path))


@torch.no_grad()
def _latencies(module, path: Path, x: torch.Tensor, threads: int) -> dict:
    """Batch-1 CPU latency at the export size: PyTorch (its own thread count), then onnxruntime with `threads`
    threads as `ort_speed.py` measures it (median of 50 after warm-up), with the FPS that gives."""
    settings = SpeedSettings(size=tuple(x.shape[-2:]), threads=threads)
    speed = measure_onnx_speed(path, settings)
    return {"torch_latency_ms": 1e3 * median_seconds(lambda: module(x), repeats=10, warmup=3), "torch_threads": torch.get_num_threads(),
            "onnx_latency_ms": speed["latency_ms"], "onnx_fps": speed["fps"], "onnx_threads": threads,
            "onnx_latency_iqr_ms": speed["latency_iqr_ms"], "onnx_repeats": speed["repeats"]}


def sample_images(size: tuple[int, int], count: int = 2, split: str | None = None, root=None) -> torch.Tensor:
    """(count, 3, H, W) inputs in [0,1]: the first images of `split`, else smooth seeded random scenes."""
    if split:
        from kdcache.data import open_split
        from kdcache.model_input import student_rule, to_tensor

        dataset = open_split(split, root=root)
        if len(dataset) == 0:
            raise KdcacheError(f"split '{split}' is empty: pass a split with images")
        images = [to_tensor(dataset[i].image) for i in range(min(count, len(dataset)))]
        resize = student_rule(size)  # what the student is fed at this size
        return torch.cat([resize(x) for x in images]).clamp(0, 1)
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(count, 3, max(2, size[0] // 16), max(2, size[1] // 16), generator=generator)
    return torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def export_onnx(model: str | os.PathLike, onnx_path: str | os.PathLike, *, int8: bool = False,
                exporter: str = "auto", input_size: tuple[int, int] | None = None, split: str | None = None,
                root=None, samples: int = 2, threads: int = SpeedSettings.threads) -> dict:
    """Export a student run/checkpoint to ONNX, verify it against PyTorch, optionally quantize to int8.

    Returns a JSON-able report: path, exporter, opset, dynamic axes, parity error, latencies (onnxruntime with
    `threads` threads, and its FPS at the export size), and for
    `int8` the quantized file with its size and accuracy change (`onnx_int8.py`).
    """
    from kdcache.model_input import onnx_metadata, size_from_meta, student_rule
    from kdcache.students import load_student
    from kdcache.students.checkpoint import encoder_init

    target = Path(onnx_path).expanduser()
    check_writable(target, "--onnx", folder=False)  # before any exporter runs: their failures would hide it
    student, meta = load_student(model)
    trained = size_from_meta(meta)
    size = tuple(input_size or trained or (240, 320))
    module = _ImageToDepth(student.eval().float()).eval()
    inputs = sample_images(size, max(2, samples), split, root)
    with writing_to(target), replacing(target) as tmp:  # a full disk or a failed check leaves no file behind
        name, error = _try_exporters(module, inputs, tmp, exporter)
        _, dynamic, opset = EXPORTERS[name]
        _write_metadata(tmp, {
            "producer": "kdcache", "student": (student.config or {}).get("student", ""),
            "output_space": meta.get("output_space", "depth"), "input": "image float32 (B,3,H,W) RGB in [0,1]",
            "output": "depth (B,1,H,W); metres for output_space=depth, 1/output is relative disparity otherwise",
            "fixed_size": "0" if dynamic else "1",
            "encoder_init": encoder_init(meta),
            # What every reader feeds it (kdcache.model_input.onnx_rule): the run's own input, i.e. its training
            # size, unless the graph only takes the export size.
            **onnx_metadata(student_rule((trained or size) if dynamic else size)),
        })
    with writing_to(target):
        report = {"onnx": str(target), "exporter": name, "opset": opset, "input_size": list(size),
                  "dynamic_axes": ["batch", "height", "width"] if dynamic else [], "parity_rel_error": error,
                  "size_mb": target.stat().st_size / 1e6, "output_space": meta.get("output_space", "depth"),
                  **_latencies(module, target, inputs[:1], threads), "machine": machine_load().as_dict()}
        if int8:
            from kdcache.export.onnx_int8 import quantize_int8

            report["int8"] = quantize_int8(target, module, inputs, split=split, root=root, threads=threads)
        return report

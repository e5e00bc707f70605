"""One interface over everything `kdcache eval` / `infer` / `export` can run: students and teachers.

`load_predictor("runs/x")` loads a student run dir / checkpoint (also `ckpt:PATH`); any other name goes
to the teacher registry (`dpt-large`, `hf:PATH`, ...). A `Predictor` maps RGB images to its output
space ("depth" metres, or "disparity" up to scale and shift) so protocols never need to know which it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kdcache.errors import KdcacheError
from kdcache.devices import resolve_device

_META_SIZE_KEYS = ("input_size", "resolution", "eval_size")


class Predictor:
    """A model ready for inference: `forward(x)` maps (B,3,H,W) [0,1] images to (B,h,w) in `output_space`."""

    kind: str = "model"

    def __init__(self, name: str, output_space: str, device: torch.device, module: torch.nn.Module | None,
                 input_size: tuple[int, int] | None = None, identity: dict | None = None):
        if output_space not in ("depth", "disparity"):
            raise KdcacheError(f"model '{name}' has output space {output_space!r}: expected depth or disparity")
        self.name, self.output_space, self.device = name, output_space, device
        self.module, self.input_size = module, input_size
        self.identity = identity or {"name": name}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def params(self) -> int | None:
        if self.module is None:
            return None
        return sum(p.numel() for p in self.module.parameters())

    @torch.no_grad()
    def predict(self, image: np.ndarray, flip_tta: bool = False) -> np.ndarray:
        """(h, w) float32 prediction for one (H, W, 3) uint8 image; `flip_tta` averages with the mirrored pass."""
        x = to_tensor(image, self.device)
        if flip_tta:
            x = torch.cat([x, torch.flip(x, dims=[-1])])
        out = self.forward(x).float()
        if flip_tta:
            out = 0.5 * (out[:1] + torch.flip(out[1:], dims=[-1]))
        return out[0].cpu().numpy()


def to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)[None].to(device).float().div_(255.0)


class StudentPredictor(Predictor):
    """A kdcache student: resizes to its input size (if any), outputs depth or 1/output as disparity."""

    kind = "student"

    def __init__(self, name: str, model: torch.nn.Module, meta: dict, device: torch.device,
                 input_size: tuple[int, int] | None = None):
        from kdcache.students.checkpoint import encoder_init

        self.meta = meta
        space = meta.get("output_space", "depth")
        size = input_size or size_from_meta(meta)
        identity = {"name": name, "student": meta.get("student") or meta.get("name"), "output_space": space,
                    "encoder_init": encoder_init(meta)}
        super().__init__(name, space, device, model.eval().to(device), size, identity)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device)
        if self.input_size is not None and tuple(x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False, antialias=True)
        depth = self.module(x)[:, 0]
        # A "disparity" student's output is only meaningful through its inverse (architecture.md §5).
        return 1.0 / depth.clamp_min(1e-6) if self.output_space == "disparity" else depth


class TeacherPredictor(Predictor):
    """A registered teacher; it applies its own resize / normalisation rule and returns full-size maps."""

    kind = "teacher"

    def __init__(self, teacher: Any, input_size: tuple[int, int] | None = None):
        self.teacher = teacher
        module = next((m for m in (getattr(teacher, a, None) for a in ("model", "module", "net"))
                       if isinstance(m, torch.nn.Module)), None)
        super().__init__(teacher.name, teacher.output_space, teacher.device, module, input_size,
                         getattr(teacher, "identity", None))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.input_size is not None and tuple(x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False, antialias=True)
        return self.teacher.predict(x).depth

    @property
    def params(self) -> int | None:
        return super().params or getattr(self.teacher, "params", None)


class OnnxPredictor(Predictor):
    """An exported student (`kdcache export`) run by onnxruntime on CPU; its space comes from the file's metadata."""

    kind = "onnx"

    def __init__(self, path: str | Path, name: str | None = None, threads: int | None = None):
        from kdcache.export import ort_session

        self.session = ort_session(path, threads)
        check_onnx_signature(self.session, path)
        props = self.session.get_modelmeta().custom_metadata_map
        self.input_name = self.session.get_inputs()[0].name
        size = props.get("input_size")
        input_size = tuple(int(v) for v in size.split("x")) if props.get("fixed_size") == "1" and size else None
        super().__init__(name or str(path), props.get("output_space", "depth"), torch.device("cpu"), None,
                         input_size, {"name": name or str(path), "onnx": str(path), **props})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().cpu()
        if self.input_size is not None and tuple(x.shape[-2:]) != tuple(self.input_size):
            x = F.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False, antialias=True)
        # A fixed-size export also has a fixed batch of 1: feed it image by image.
        batches = [x[i:i + 1] for i in range(len(x))] if self.input_size is not None else [x]
        outputs = [self.session.run(None, {self.input_name: b.numpy()})[0] for b in batches]
        depth = torch.from_numpy(np.concatenate(outputs))[:, 0]
        return 1.0 / depth.clamp_min(1e-6) if self.output_space == "disparity" else depth


def check_onnx_signature(session, path) -> None:
    """An .onnx kdcache can run takes one (B, 3, H, W) image batch and gives (B, 1, H, W) maps, as `kdcache export`
    writes them: any other file is one line before any image is read, not an onnxruntime traceback."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    problem = None
    if len(inputs) != 1 or not outputs:
        problem = f"{len(inputs)} inputs, {len(outputs)} outputs"
    elif not _onnx_fits(inputs[0].shape, channels=3):
        problem = f"input shape {_onnx_shape(inputs[0].shape)}"
    elif not _onnx_fits(outputs[0].shape, channels=1):
        problem = f"output shape {_onnx_shape(outputs[0].shape)}"
    if problem:
        raise KdcacheError(f"{path} takes or gives the wrong tensors for a depth model ({problem}; expected one "
                           f"input (batch, 3, H, W) and an output (batch, 1, H, W)): export it with kdcache export")


def _onnx_fits(shape, channels: int) -> bool:
    """A rank-4 shape with `channels` channels; named (dynamic) sides fit anything."""
    return len(shape) == 4 and (not isinstance(shape[1], int) or shape[1] == channels)


def _onnx_shape(shape) -> str:
    return "(" + ", ".join(str(side) for side in shape) + ")"


def size_from_meta(meta: dict) -> tuple[int, int] | None:
    """The (H, W) a student was trained at, from its checkpoint meta (None if it does not say)."""
    for source in (meta, meta.get("config") or {}):
        for key in _META_SIZE_KEYS:
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, (list, tuple)) and len(value) == 2:
                return int(value[0]), int(value[1])
    return None


def is_student_spec(spec: str) -> bool:
    return spec.startswith("ckpt:") or Path(spec).expanduser().exists()


def looks_like_path(spec: str) -> bool:
    """A spec meant as a file or folder (no registered teacher name has a slash or a model-file suffix)."""
    return not spec.startswith(("hf:", "ckpt:")) and (
        spec.startswith(("/", ".", "~")) or "/" in spec or "\\" in spec or spec.endswith((".onnx", ".safetensors")))


def load_predictor(spec: str | Predictor, device: str = "auto", precision: str = "fp32",
                   input_size: tuple[int, int] | None = None) -> Predictor:
    """A student run/checkpoint path (or `ckpt:PATH`), else a registered teacher name such as `hf:PATH`."""
    if isinstance(spec, Predictor):
        return spec
    torch_device = resolve_device(device)
    if spec.endswith(".onnx") and Path(spec).expanduser().is_file():
        return OnnxPredictor(Path(spec).expanduser(), name=spec)
    if is_student_spec(spec):
        from kdcache.students import load_student

        path = Path(spec[5:] if spec.startswith("ckpt:") else spec).expanduser()
        model, meta = load_student(path)
        return StudentPredictor(spec, model, dict(meta), torch_device, input_size)
    if looks_like_path(spec):
        raise KdcacheError(f"{spec}: no such file or directory: pass an existing student run dir, checkpoint or "
                           f".onnx file, or a teacher name (`kdcache teachers` lists them)")
    from kdcache.teachers import create_teacher

    try:
        teacher = create_teacher(spec, device=str(torch_device), precision=precision)
    except KdcacheError as err:
        if spec.startswith("hf:"):
            raise
        raise KdcacheError(f"'{spec}' is neither an existing student run/checkpoint path nor a teacher: {err}") from err
    if teacher.output_space is None:
        raise KdcacheError(f"teacher '{spec}' makes no predictions: pass a student run or a real teacher name")
    return TeacherPredictor(teacher, input_size)

"""One interface over everything `kdcache eval` / `infer` / `live` can run: students, their `.onnx`, teachers.

`load_predictor("runs/x")` loads a student run dir / checkpoint (also `ckpt:PATH`) or an exported `.onnx`; any
other name goes to the teacher registry (`dpt-large`, `hf:PATH`, ...). A `Predictor` maps RGB images to its
output space ("depth" metres, or "disparity" up to scale and shift) so protocols never need to know which it was.
Every predictor feeds its model through one `kdcache.model_input.ResizeRule` (`predictor.rule`): a student and
its `.onnx` the same `fixed` rule at the training size, so both see the same pixels on any frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdcache.errors import KdcacheError
from kdcache.devices import resolve_device
from kdcache.model_input import ResizeRule, as_output_space, size_from_meta, student_rule, to_tensor

__all__ = ["Predictor", "load_predictor", "size_from_meta", "to_tensor"]


class Predictor:
    """A model ready for inference: `forward(x)` maps (B,3,H,W) [0,1] images to (B,h,w) in `output_space`."""

    kind: str = "model"

    def __init__(self, name: str, output_space: str, device: torch.device, module: torch.nn.Module | None,
                 rule: ResizeRule | None = None, identity: dict | None = None):
        if output_space not in ("depth", "disparity"):
            raise KdcacheError(f"model '{name}' has output space {output_space!r}: expected depth or disparity")
        self.name, self.output_space, self.device = name, output_space, device
        self.module, self.rule = module, rule or student_rule(None)
        self.identity = {**(identity or {"name": name}), "input_rule": self.rule.describe()}

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The fixed (H, W) the model is fed, if its rule has one."""
        return tuple(self.rule.size) if self.rule.rule == "fixed" else None

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


class StudentPredictor(Predictor):
    """A kdcache student fed at its training size (`student_rule`); outputs depth or 1/output as disparity."""

    kind = "student"

    def __init__(self, name: str, model: torch.nn.Module, meta: dict, device: torch.device,
                 input_size: tuple[int, int] | None = None):
        from kdcache.students.checkpoint import encoder_init

        self.meta = meta
        space = meta.get("output_space", "depth")
        identity = {"name": name, "student": meta.get("student") or meta.get("name"), "output_space": space,
                    "encoder_init": encoder_init(meta)}
        rule = student_rule(input_size or size_from_meta(meta))
        super().__init__(name, space, device, model.eval().to(device), rule, identity)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return as_output_space(self.module(self.rule(images.to(self.device)))[:, 0], self.output_space)


class TeacherPredictor(Predictor):
    """A registered teacher; it applies its own resize / normalisation rule and returns full-size maps."""

    kind = "teacher"

    def __init__(self, teacher: Any, input_size: tuple[int, int] | None = None):
        self.teacher = teacher
        module = next((m for m in (getattr(teacher, a, None) for a in ("model", "module", "net"))
                       if isinstance(m, torch.nn.Module)), None)
        # `input_size` (eval's --input-size) is the size the teacher is handed, as precompute hands it the cache's.
        super().__init__(teacher.name, teacher.output_space, teacher.device, module, student_rule(input_size),
                         getattr(teacher, "identity", None))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.teacher.predict(self.rule(images)).depth

    @property
    def params(self) -> int | None:
        return super().params or getattr(self.teacher, "params", None)


class OnnxPredictor(Predictor):
    """An exported student (`kdcache export`) run by onnxruntime on CPU; its space comes from the file's metadata."""

    kind = "onnx"

    def __init__(self, path: str | Path, name: str | None = None, threads: int | None = None,
                 input_size: tuple[int, int] | None = None):
        from kdcache.model_input import onnx_rule
        from kdcache.onnx_session import ort_session, session_metadata

        self.session = ort_session(path, threads)
        check_onnx_signature(self.session, path)
        props = session_metadata(self.session)
        self.input_name = self.session.get_inputs()[0].name
        self.fixed_graph = props.get("fixed_size") == "1"
        rule = onnx_rule(props)
        if input_size and tuple(input_size) != tuple(rule.size or ()):
            if self.fixed_graph:
                raise KdcacheError(f"{path} was exported for {rule.size[0]}x{rule.size[1]} input only: drop "
                                   f"--input-size or re-export with --input-size {input_size[0]}x{input_size[1]}")
            rule = student_rule(input_size)
        super().__init__(name or str(path), props.get("output_space", "depth"), torch.device("cpu"), None,
                         rule, {"name": name or str(path), "onnx": str(path), **props})

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.rule(images.float().cpu())
        # A fixed-size export also has a fixed batch of 1: feed it image by image.
        batches = [x[i:i + 1] for i in range(len(x))] if self.fixed_graph else [x]
        outputs = [self.session.run(None, {self.input_name: b.numpy()})[0] for b in batches]
        return as_output_space(torch.from_numpy(np.concatenate(outputs))[:, 0], self.output_space)


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
        return OnnxPredictor(Path(spec).expanduser(), name=spec, input_size=input_size)
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

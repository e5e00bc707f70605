"""`ckpt:PATH` — a kdcache student checkpoint as the teacher of the next stage (the two-stage recipe).

The student is loaded with `kdcache.students.load_student` (safetensors only, never pickle), runs at the
cache resolution (it accepts any H, W and normalises inside), and exposes its encoder maps as `feat_0`
(finest) ... `feat_{n-1}` (coarsest). Its `output_space` comes from the checkpoint's meta: a student
trained on metric GT predicts metres ("depth"); one distilled from a relative teacher only has a meaningful
1/output, so as a teacher it returns that inverse ("disparity").
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdcache.console import log
from kdcache.errors import KdcacheError
from kdcache.devices import resolve_device
from kdcache.teachers.base import OUTPUT_SPACES, Teacher, resolve_precision
from kdcache.teachers.hf_source import files_sha256
from kdcache.model_input import ResizeRule, as_output_space


class CheckpointTeacher(Teacher):
    def __init__(self, name: str, model: torch.nn.Module, meta: dict, path: Path, device, precision: str,
                 input_size: int | None):
        size = (input_size, input_size) if input_size else None
        rule = ResizeRule("short-side", size, 1, "bilinear") if size else ResizeRule("native", None)
        super().__init__(name, device, precision, rule)
        space = meta.get("output_space")
        if space not in OUTPUT_SPACES:
            raise KdcacheError(
                f"checkpoint {path} has output_space {space!r} in its meta: expected 'depth' or 'disparity'; "
                "re-save it with kdcache.students.save_student"
            )
        self.model = model.eval().to(device)
        self.meta = meta
        self.output_space = space
        channels = list(getattr(model, "feature_channels", []))
        self.feature_layers = [f"feat_{i}" for i in range(len(channels))]
        self.default_feature_layers = list(self.feature_layers)
        self.licence = meta.get("licence")
        self.params = sum(p.numel() for p in model.parameters())
        self.identity = {
            "name": name,
            "source": str(path),
            "student": meta.get("student") or dict(getattr(model, "config", {})).get("student"),
            "weights_sha256": _checkpoint_sha256(path),
            "output_space": space,
            "preprocess": self.preprocess,
            "precision": precision,
        }

    def _run(self, x: torch.Tensor, layers: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if layers:
            depth, maps = self.model(x, return_features=True)
            features = {layer: maps[int(layer.split("_")[1])] for layer in layers}
        else:
            depth, features = self.model(x), {}
        return as_output_space(depth[:, 0].float(), self.output_space), features


def _checkpoint_sha256(path: Path) -> str:
    """sha256 of the exact weights file `load_student` reads (run dirs resolve to checkpoints/best, then last)."""
    from kdcache.students.checkpoint import find_checkpoint

    return files_sha256([find_checkpoint(path)])


def create_checkpoint_teacher(
    ref: str,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    input_size: int | None = None,
) -> CheckpointTeacher:
    path = Path(ref).expanduser()
    if not ref or not path.exists():
        raise KdcacheError(
            f"student checkpoint '{ref}' does not exist: pass ckpt:RUN_DIR, ckpt:CHECKPOINT_DIR or "
            "ckpt:/path/to/model.safetensors"
        )
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    try:
        from kdcache.students import load_student
    except ImportError as err:  # the students package is a sibling stage; say so rather than trace back
        raise KdcacheError("kdcache.students.load_student is unavailable: reinstall kdcache") from err
    model, meta = load_student(path, device=device)
    teacher = CheckpointTeacher(f"ckpt:{ref}", model, dict(meta), path, device, precision, input_size)
    log(f"teacher {teacher.name}: student {teacher.identity['student']}, {teacher.params / 1e6:.2f} M params, "
        f"{teacher.output_space}, input {teacher.rule.summary()}")
    return teacher

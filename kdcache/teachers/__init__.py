"""Teachers (architecture.md §2): `create_teacher("dpt-large")`, `list_teachers()`, `register_teacher`.

    teacher = create_teacher("depth-anything-v2-small", device="cuda", precision="fp16")
    out = teacher.predict(images, layers=teacher.default_feature_layers)   # images (B,3,H,W) in [0,1]
    out.depth        # (B,H,W) float32 in teacher.output_space ("disparity" or "depth")
    out.features     # {"neck_0": (B,C,h,w), ...}

Names: the entries in `kdcache/teachers/zoo.py`, plus `hf:ID_OR_PATH` (any DPT / Depth Anything hub id or
local save_pretrained folder), `ckpt:PATH` (a kdcache student checkpoint or run dir) and `none` (a cache
of images and GT only: a `NoTeacher` whose `output_space` is None). Factories take
`(device="auto", precision="fp32", **options)`; options: `input_size`, and for `hf:` also `output_space`
and `revision`.
"""

from __future__ import annotations

from typing import Any

from kdcache.registry import Registry
from kdcache.teachers.base import NoTeacher, Teacher, TeacherOutput

TEACHERS: Registry = Registry("teacher", list_command="kdcache teachers")
register_teacher = TEACHERS.register


def create_teacher(name: str, device: str = "auto", precision: str = "fp32", **options: Any) -> Teacher | NoTeacher:
    """Build the teacher `name` on `device`; loading errors are one-line `KdcacheError`s raised before any work."""
    return TEACHERS.create(name, device=device, precision=precision, **options)


def list_teachers(include_prefixes: bool = False) -> list[str]:
    """Registered names in registration order (`hf:` / `ckpt:` only when asked)."""
    return TEACHERS.names(include_prefixes=include_prefixes)


def teacher_info(name: str) -> dict[str, Any]:
    """Static facts about a registered name (source, output space, input rule, layers, params, licence)."""
    return dict(TEACHERS.info(name))


from kdcache.teachers import zoo  # noqa: E402,F401  (registers the built-in entries)

__all__ = [
    "TEACHERS",
    "NoTeacher",
    "Teacher",
    "TeacherOutput",
    "create_teacher",
    "list_teachers",
    "register_teacher",
    "teacher_info",
]

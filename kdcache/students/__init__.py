"""The student zoo: timm encoders + light decoders, named presets, checkpoints, complexity.

`create_student("mobilevit")` builds a preset; `create_student("resnet34+nnconv5")` any timm encoder with any
registered decoder; keyword overrides (`encoder=`, `decoder=`, `width=`, `init_depth=`, ...) change a preset.
See docs/architecture.md section 5 for the contract.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from kdcache.errors import KdcacheError
from kdcache.students import hu, minidpt, nnconv5  # noqa: F401  (register the decoders)
from kdcache.students.decoders import DECODERS, list_decoders, register_decoder
from kdcache.students.encoders import TimmEncoder, locate_weights
from kdcache.students.model import DepthStudent
from kdcache.students.presets import SPEC_FIELDS, STUDENTS, StudentSpec, register_student

__all__ = [
    "STUDENTS", "DECODERS", "StudentSpec", "DepthStudent", "create_student", "list_students", "list_decoders",
    "register_student", "register_decoder", "resolve_spec", "save_student", "load_student", "complexity",
    "student_complexity", "describe_students",
]

MAX_WIDTH = 4096  # decoder widths are 16-128 in every preset; beyond this a spec is a typo or a crafted file


def list_students() -> list[str]:
    """Registered preset names (free `encoder+decoder` combos are accepted too but not listed)."""
    return STUDENTS.names()


def resolve_spec(name: str, **overrides: Any) -> StudentSpec:
    """The spec of preset `name` (or of an `encoder+decoder` combo) with `overrides` applied."""
    unknown = sorted(set(overrides) - set(SPEC_FIELDS))
    if unknown:
        raise KdcacheError(f"unknown student option(s) {', '.join(unknown)}: allowed are {', '.join(SPEC_FIELDS)}.")
    if name in STUDENTS:
        spec = STUDENTS.create(name)
    elif "+" in name:
        encoder, _, decoder = name.partition("+")
        spec = StudentSpec(encoder=encoder.strip(), decoder=decoder.strip())
    else:
        raise KdcacheError(_unknown_student_message(name))
    if overrides.get("out_indices") is not None:
        indices = overrides["out_indices"]
        if not isinstance(indices, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                              for i in indices):
            raise KdcacheError(f"student out_indices must be a list of integers, got {indices!r}.")
        overrides["out_indices"] = tuple(indices)
    spec = spec.replace(**overrides)
    DECODERS.resolve(spec.decoder)  # unknown decoder: one line listing the known ones
    _check_spec(spec)
    return spec


def _unknown_student_message(name: str) -> str:
    try:
        STUDENTS.resolve(name)
    except KdcacheError as err:
        return (f"{err} Or write ENCODER+DECODER (any timm encoder; decoders: "
                f"{', '.join(list_decoders())}).")
    return f"unknown student '{name}'."


def _check_spec(spec: StudentSpec) -> None:
    """Types and sane bounds of every field, before anything is built."""
    if not (isinstance(spec.encoder, str) and spec.encoder and isinstance(spec.decoder, str) and spec.decoder):
        raise KdcacheError(f"student encoder and decoder must be names, got {spec.encoder!r} and {spec.decoder!r}.")
    if spec.width is not None and (not isinstance(spec.width, int) or isinstance(spec.width, bool)
                                   or not 4 <= spec.width <= MAX_WIDTH):
        raise KdcacheError(f"student width must be an integer from 4 to {MAX_WIDTH}, got {spec.width!r}.")
    if not isinstance(spec.drop_last_block, bool):
        raise KdcacheError(f"student drop_last_block must be true or false, got {spec.drop_last_block!r}.")
    if spec.out_indices is not None and len(set(spec.out_indices)) != len(spec.out_indices):
        raise KdcacheError(f"student out_indices must be distinct, got {list(spec.out_indices)}.")
    if not (isinstance(spec.min_depth, (int, float)) and isinstance(spec.init_depth, (int, float))
            and spec.init_depth > spec.min_depth > 0):
        raise KdcacheError(f"student needs init_depth > min_depth > 0 (metres), got init_depth={spec.init_depth!r}, "
                           f"min_depth={spec.min_depth!r}.")


def create_student(name: str = "mobilevit", pretrained: bool = False, **overrides: Any) -> DepthStudent:
    """Build student `name`; `pretrained` starts its encoder from ImageNet weights (local caches, else the hub when
    reachable; a one-line `KdcacheError` when neither has them). `model.encoder.initial_weights` says which."""
    spec = resolve_spec(name, **overrides)
    encoder = TimmEncoder(spec.encoder, pretrained=pretrained, drop_last_block=spec.drop_last_block,
                          out_indices=spec.out_indices, fold_norm=spec.fold_norm)
    decoder = DECODERS.create(spec.decoder, encoder.channels, encoder.reductions, width=spec.width)
    config = {"student": name, "overrides": _jsonable(overrides), "spec": _jsonable(asdict(spec))}
    return DepthStudent(encoder, decoder, config, init_depth=spec.init_depth, min_depth=spec.min_depth)


def check_pretrained(name: str, **overrides: Any) -> None:
    """Refuse, before any work, a student whose encoder's ImageNet weights cannot be had (`locate_weights`)."""
    locate_weights(resolve_spec(name, **overrides).encoder)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


# Imported last: they use create_student.
from kdcache.students.checkpoint import load_student, save_student  # noqa: E402
from kdcache.students.complexity import complexity, describe_students, student_complexity  # noqa: E402

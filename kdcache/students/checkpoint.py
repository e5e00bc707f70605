"""Student checkpoints: `model.safetensors` + `student.json`, written atomically, loaded without pickle.

A checkpoint directory is written whole under a temporary sibling name and renamed into place, so a reader sees
the old checkpoint or the new one, never a mix. The JSON (format, architecture config, meta) is also embedded in
the safetensors header, so a lone `.safetensors` file is enough to rebuild the student.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdcache.atomic import make_durable, replacing_dir
from kdcache.errors import KdcacheError
from kdcache.students.presets import SPEC_FIELDS

WEIGHTS = "model.safetensors"
DESCRIPTION = "student.json"
FORMAT = "kdcache-student"
FORMAT_VERSION = 1
OUTPUT_SPACES = ("depth", "disparity")
_HEADER_KEY = "kdcache_student"


def encoder_init(meta: dict[str, Any]) -> str:
    """What a checkpoint's encoder started from, as `kdcache eval` and the ONNX metadata show it: `imagenet`,
    `scratch`, or `unknown` for checkpoints of kdcache versions that did not record it."""
    return str((meta.get("encoder_weights") or {}).get("init", "unknown"))


def _description(model: nn.Module, meta: dict[str, Any]) -> dict[str, Any]:
    from kdcache import __version__

    meta = dict(meta or {})
    meta.setdefault("output_space", "depth")
    if meta["output_space"] not in OUTPUT_SPACES:
        raise KdcacheError(f"meta output_space must be one of {', '.join(OUTPUT_SPACES)}, "
                           f"got {meta['output_space']!r}: fix the caller.")
    if not hasattr(model, "config"):
        raise KdcacheError("save_student needs a model built by kdcache.students.create_student (it has no config).")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kdcache_version": __version__,
        "config": model.config,
        "feature_channels": list(getattr(model, "feature_channels", [])),
        "meta": meta,
    }


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """`safetensors.torch.save_file`, with its I/O failures (full disk, ...) raised as the OSError they are."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as err:
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        raise OSError(int(code[1]), os.strerror(int(code[1])), str(path)) from err


def save_student(model: nn.Module, directory: str | os.PathLike, meta: dict[str, Any] | None = None) -> Path:
    """Write `directory/model.safetensors` and `directory/student.json`, replacing any previous checkpoint."""
    directory = Path(directory)
    description = _description(model, meta or {})
    text = json.dumps(description, indent=2, sort_keys=True, default=str)
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with replacing_dir(directory) as staging:
        save_tensors(state, staging / WEIGHTS, {"format": "pt", _HEADER_KEY: text})
        (staging / DESCRIPTION).write_text(text + "\n")
        make_durable([staging / WEIGHTS, staging / DESCRIPTION])
    return directory


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The weights file behind `path`: a .safetensors file, a checkpoint dir, or a run dir (best, then last)."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise KdcacheError(f"{path} is not a kdcache student checkpoint: pass a run dir, a checkpoint dir "
                               f"or its {WEIGHTS}.")
        return path
    if not path.is_dir():
        raise KdcacheError(f"student checkpoint {path} does not exist: pass a run dir, a checkpoint dir or a "
                           f".safetensors file.")
    for candidate in (path / WEIGHTS, path / "checkpoints" / "best" / WEIGHTS, path / "checkpoints" / "last" / WEIGHTS):
        if candidate.is_file():
            return candidate
    variants = sorted(p.relative_to(path).parts[0] for p in path.glob(f"*/checkpoints/*/{WEIGHTS}"))
    if variants:
        raise KdcacheError(f"{path} holds several student variants ({', '.join(dict.fromkeys(variants))}): "
                           f"pass one of their directories.")
    raise KdcacheError(f"no student checkpoint in {path}: expected {WEIGHTS} or checkpoints/best|last/{WEIGHTS} "
                       f"(was training run long enough to save one?).")


def read_description(weights: Path) -> dict[str, Any]:
    """student.json next to the weights, else the copy in the safetensors header; refuse foreign files."""
    from safetensors import safe_open

    sidecar = weights.parent / DESCRIPTION
    try:
        if sidecar.is_file():
            description = json.loads(sidecar.read_text())
        else:
            with safe_open(str(weights), framework="pt") as handle:
                header = (handle.metadata() or {}).get(_HEADER_KEY)
            if header is None:
                raise KdcacheError(f"{weights} is not a kdcache student checkpoint (no {DESCRIPTION} and no kdcache "
                                   f"header): to use foreign weights, build the student and load_state_dict yourself.")
            description = json.loads(header)
    except (OSError, ValueError, RecursionError) as err:
        raise KdcacheError(f"cannot read student checkpoint {weights}: {err}; re-save it with save_student.") from err
    source = sidecar if sidecar.is_file() else weights
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        found = description.get("format") if isinstance(description, dict) else type(description).__name__
        raise KdcacheError(f"{source} is not a kdcache student description (format {found!r}).")
    version = description.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise KdcacheError(f"{weights} was written by a newer kdcache (format {version!r}): upgrade kdcache.")
    _check_description(description, source)
    return description


def _check_description(description: dict[str, Any], source: Path) -> None:
    """The fields `load_student` reads have the right types (a crafted file gets one line, not a KeyError)."""
    config, meta = description.get("config"), description.get("meta", {})
    problem = None
    if not isinstance(config, dict):
        problem = "no config table"
    elif not isinstance(config.get("student"), str):
        problem = "no config.student name"
    elif any(config.get(key) is not None and not isinstance(config[key], dict) for key in ("spec", "overrides")):
        problem = "config.spec / config.overrides is not a table"
    elif unknown := sorted({key for table in ("spec", "overrides") for key in config.get(table) or {}}
                           - set(SPEC_FIELDS)):
        problem = f"config.spec / config.overrides has unknown key(s) {', '.join(unknown)}"
    elif not isinstance(meta, dict) or meta.get("output_space", "depth") not in OUTPUT_SPACES:
        problem = f"meta output_space must be one of {', '.join(OUTPUT_SPACES)}"
    if problem:
        raise KdcacheError(f"{source} is not a valid kdcache student description ({problem}): it was edited or "
                           f"damaged; re-save the checkpoint with save_student.")


def load_student(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(student in eval mode, meta) from a run dir, checkpoint dir or .safetensors file.

    The description is validated and the architecture it names is first built on the meta device (no memory)
    and compared with the tensor shapes in the safetensors header; only a match is built for real and loaded,
    so a crafted student.json can never make kdcache allocate a model its weights file does not hold.
    """
    from safetensors.torch import load_file

    weights = find_checkpoint(path)
    description = read_description(weights)
    config = description["config"]
    with torch.device("meta"):
        skeleton = _rebuild(config)
    problem = _shape_mismatch(_shapes(skeleton.state_dict()), _header_shapes(weights))
    if problem:
        raise KdcacheError(f"{weights} does not match student '{config['student']}' ({problem}): it was saved by "
                           f"a different kdcache/timm version or its {DESCRIPTION} was edited.")
    model = _rebuild(config)
    try:
        state = load_file(str(weights), device=str(device))
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise KdcacheError(f"cannot read weights {weights}: {err}; the file is damaged, re-save it.") from err
    model.load_state_dict(state, strict=True)
    meta = dict(description.get("meta", {}))
    meta.setdefault("output_space", "depth")
    return model.to(device).eval(), meta


def _rebuild(config: dict[str, Any]) -> nn.Module:
    """The architecture described by `config`, from its fully resolved spec when present: a checkpoint keeps
    loading even if its preset's defaults change or the preset is renamed later."""
    from kdcache.students import STUDENTS, create_student

    spec = config.get("spec")
    if not spec:
        return create_student(config["student"], pretrained=False, **config.get("overrides") or {})
    if not {"encoder", "decoder"} <= set(spec):
        raise KdcacheError(f"student spec {spec} lacks an encoder or decoder: re-save the checkpoint with "
                           f"save_student.")
    name = config["student"] if config["student"] in STUDENTS else f"{spec['encoder']}+{spec['decoder']}"
    model = create_student(name, pretrained=False, **spec)
    model.config = dict(config)
    return model


def _shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from the safetensors header alone (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
    except Exception as err:  # safetensors raises its own error types for truncated/corrupt files
        raise KdcacheError(f"cannot read weights {weights}: {err}; the file is damaged, re-save it.") from err


def _shape_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    """'' if `found` fits `expected` exactly, else a short description of the first differences."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    reshaped = sorted(k for k in set(expected) & set(found) if found[k] != expected[k])
    parts = [f"{len(keys)} {label}, e.g. {keys[0]}" for keys, label in
             ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "with another shape")) if keys]
    return "; ".join(parts)

"""Checkpoints a killed run can continue from exactly, written so a kill never leaves a broken one.

`checkpoints/last` and `checkpoints/best` are ordinary student checkpoints (`save_student`:
model.safetensors + student.json, loadable by `load_student`, EMA weights when EMA is on) plus the trainer
state resume needs: raw weights, loss adapters, optimizer, scheduler, EMA, per-variant RNG states of every
rank, the step, the best validation score and the loader layout. That state is stored without pickle, so
reading a planted checkpoint can never run code: every tensor (RNG states are uint8 tensors) goes to
`trainer.safetensors`, the structure around them (scalars, the optimizer's param groups, tuples, int keys)
to `trainer.json`, where each tensor is a `{"__tensor__": "<n>"}` reference into the safetensors file.
A checkpoint is built in a temporary sibling directory and swapped in with renames; if a kill lands
between the two renames, `last.old` is still complete and `find_resume` uses it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from kdcache.atomic import replacing_dir
from kdcache.errors import KdcacheError

STATE_JSON = "trainer.json"
STATE_TENSORS = "trainer.safetensors"
LEGACY_PICKLE = "trainer.pt"  # never read: a pickle can run code when loaded
FORMAT = "kdcache-trainer-state"
FORMAT_VERSION = 1
STATE_KEYS = ("step", "lanes", "fingerprint", "variant", "rng", "best_val", "best_step")
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def write_checkpoint(directory: Path, weights: torch.nn.Module, meta: dict[str, Any],
                     state: dict[str, Any] | None) -> None:
    """Atomically (re)write `directory` with the student's weights, its meta and the trainer state."""
    from kdcache.students import save_student

    with replacing_dir(directory) as staging:
        save_student(weights, staging, meta)
        if state is not None:
            write_state(staging, state)


def find_resume(run_dir: Path) -> Path | None:
    """The `last` checkpoint of a run dir (or its `.old` twin after an unlucky kill); None if absent.

    A checkpoint holding only a pickled `trainer.pt` counts as present, so that resuming it is refused
    by `read_state` instead of silently starting over.
    """
    for name in ("last", "last.old"):
        candidate = Path(run_dir) / "checkpoints" / name
        if (candidate / STATE_JSON).is_file() or (candidate / LEGACY_PICKLE).is_file():
            return candidate
    return None


def write_state(directory: Path, state: dict[str, Any]) -> None:
    """`trainer.json` + `trainer.safetensors` in `directory` (a staging dir: written whole or not at all)."""
    from kdcache import __version__
    from kdcache.students.checkpoint import save_tensors

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(state, tensors)
    save_tensors(tensors, Path(directory) / STATE_TENSORS, {"format": FORMAT})
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kdcache_version": __version__, "state": tree}
    (Path(directory) / STATE_JSON).write_text(json.dumps(header))


FIX = "delete the run dir or train into a new --out"


def read_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer state of a checkpoint written by this kdcache version; anything else is a one-line refusal."""
    checkpoint = Path(checkpoint)
    header = _state_header(checkpoint)
    tensors = _read_tensors(checkpoint / STATE_TENSORS, FIX)
    try:
        state = _decode(header["state"], tensors)
        missing = [key for key in STATE_KEYS if key not in state] if isinstance(state, dict) else list(STATE_KEYS)
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        if not all(isinstance(r, dict) and r.get("cpu") is not None and r["cpu"].dtype == torch.uint8
                   for r in state["rng"]):
            raise ValueError("bad RNG states")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _incomplete(checkpoint, err) from None
    return state


def read_progress(checkpoint: Path) -> dict[str, Any]:
    """The step and fingerprint of a checkpoint's trainer state, read without its tensors (same refusals)."""
    checkpoint = Path(checkpoint)
    state = _state_header(checkpoint)["state"]
    try:
        return {"step": int(state["step"]), "fingerprint": _decode(state["fingerprint"], {})}
    except (KeyError, TypeError, ValueError) as err:
        raise _incomplete(checkpoint, err) from None


def _incomplete(checkpoint: Path, err: Exception) -> KdcacheError:
    return KdcacheError(f"{checkpoint / STATE_JSON} is not a complete kdcache trainer state ({err}): {FIX}")


def _state_header(checkpoint: Path) -> dict[str, Any]:
    """trainer.json of a checkpoint written by this kdcache version; a pickle or another version is refused."""
    from kdcache import __version__

    if not (checkpoint / STATE_JSON).is_file():
        raise KdcacheError(f"{checkpoint / LEGACY_PICKLE} is a pickled trainer state (an older kdcache, or not "
                           f"kdcache at all), which kdcache never loads because unpickling can run code: {FIX}")
    header = _read_header(checkpoint / STATE_JSON, FIX)
    if header.get("kdcache_version") != __version__:
        raise KdcacheError(f"{checkpoint} was written by kdcache {header.get('kdcache_version')}, this is kdcache "
                           f"{__version__}: an exact resume needs the same version; resume with kdcache "
                           f"{header.get('kdcache_version')} or {FIX}")
    return header


def _read_header(path: Path, fix: str) -> dict[str, Any]:
    try:
        header = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise KdcacheError(f"cannot read {path} ({type(err).__name__}): {fix}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise KdcacheError(f"{path} is not a kdcache trainer state: {fix}")
    if header.get("format_version") != FORMAT_VERSION:
        raise KdcacheError(f"{path} has trainer-state format {header.get('format_version')!r}, this kdcache reads "
                           f"format {FORMAT_VERSION}: {fix}")
    return header


def _read_tensors(path: Path, fix: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own types for missing / damaged files
        raise KdcacheError(f"cannot read {path} ({str(err).splitlines()[0] if str(err) else type(err).__name__}): "
                           f"{fix}") from None


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON tree for `value`; tensors are moved into `tensors` and replaced by references."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        # Own contiguous CPU copies: safetensors refuses shared or strided storage.
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {_TENSOR: key}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        return {_ITEMS: [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"trainer state cannot store a {type(value).__name__}")


def _decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(tree, list):
        return [_decode(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if set(tree) == {_TENSOR}:
        return tensors[tree[_TENSOR]]
    if set(tree) == {_TUPLE}:
        return tuple(_decode(v, tensors) for v in tree[_TUPLE])
    if set(tree) == {_ITEMS}:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in tree[_ITEMS]}
    return {k: _decode(v, tensors) for k, v in tree.items()}


def capture_rng(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)

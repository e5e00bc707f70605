"""Checkpoints a killed run can continue from exactly, written so a kill never leaves a broken one.

`checkpoints/last` and `checkpoints/best` are ordinary student checkpoints (`save_student`:
model.safetensors + student.json, loadable by `load_student`, EMA weights when EMA is on) plus
`trainer.pt` with everything else resume needs: raw weights, loss adapters, optimizer, scheduler, EMA,
per-variant RNG states of every rank, the step, the best validation score and the loader layout.
A checkpoint is built in a temporary sibling directory and swapped in with renames; if a kill lands
between the two renames, `last.old` is still complete and `find_resume` uses it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from kdcache.errors import KdcacheError

TRAINER_STATE = "trainer.pt"


def write_checkpoint(directory: Path, weights: torch.nn.Module, meta: dict[str, Any],
                     state: dict[str, Any] | None) -> None:
    """Atomically (re)write `directory` with the student's weights, its meta and the trainer state."""
    from kdcache.students import save_student

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        save_student(weights, staging, meta)
        if state is not None:
            torch.save(state, staging / TRAINER_STATE)
        _swap_in(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, directory: Path) -> None:
    old = directory.with_name(directory.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if directory.exists():
        os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_resume(run_dir: Path) -> Path | None:
    """The `last` checkpoint of a run dir (or its `.old` twin after an unlucky kill); None if absent."""
    for name in ("last", "last.old"):
        candidate = Path(run_dir) / "checkpoints" / name
        if (candidate / TRAINER_STATE).is_file():
            return candidate
    return None


def read_state(checkpoint: Path) -> dict[str, Any]:
    path = Path(checkpoint) / TRAINER_STATE
    try:
        # Full unpickling: the trainer state carries Python and NumPy RNG states, which weights_only refuses.
        # It is only read back from the user's own run dir on --resume; the weights people share and load
        # elsewhere (teachers, eval, export) are the safetensors checkpoints, never this file.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user problem
        raise KdcacheError(f"cannot read {path} ({err}): delete the run dir or train without --resume") from None


def capture_rng(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)

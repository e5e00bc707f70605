"""Which device a command runs on, and where this process sits when torchrun launched it.

`--device auto` (every command's default) means the GPU when there is one: `cuda:LOCAL_RANK` (LOCAL_RANK is set
by torchrun, 0 otherwise), else the CPU. A plain `cuda` also picks `cuda:LOCAL_RANK`, so one command line serves
every process of a `torchrun --nproc-per-node N` launch.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

from kdcache.errors import KdcacheError


class Launch(NamedTuple):
    """This process's place in a torchrun launch (rank 0 of 1 when run directly)."""

    rank: int
    world_size: int
    local_rank: int


def launch_env() -> Launch:
    try:
        return Launch(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                      int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError as err:
        raise KdcacheError(f"bad RANK / WORLD_SIZE / LOCAL_RANK in the environment ({err}): launch with torchrun "
                           "or unset them") from None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` -> `cuda:LOCAL_RANK` when CUDA is available, else `cpu`; anything else is checked."""
    local_rank = launch_env().local_rank
    if str(device) == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise KdcacheError(f"bad device '{device}': use auto, cpu, cuda, cuda:1 or mps") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise KdcacheError(f"device '{device}' requested but CUDA is not available: pass --device cpu or auto")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def default_workers(stage: str) -> int:
    """DataLoader worker processes when a config leaves `workers` unset (None). One rule per stage, because the
    stages differ in what the count changes:
    - `precompute`: cores - 1, at most 8. Workers decode and resize images for the teacher; the cache is the same
      with any count, so use the machine (one core is left to the main process feeding the device).
    - `train`: 2, on every machine. Each worker serves one lane of the batch order (`train/loader.py`), so the
      count is part of what a run computes: a fixed default keeps a config's batches the same everywhere.
    """
    if stage == "precompute":
        return max(0, min(8, (os.cpu_count() or 1) - 1))
    if stage == "train":
        return 2
    raise ValueError(f"no worker rule for stage {stage!r}")

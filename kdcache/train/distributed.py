"""torchrun / DDP plumbing: one process per device, NCCL on GPUs, gloo on CPU (so tests can run it).

Launch: `torchrun --nproc-per-node N -m kdcache.cli.main train ...` (or `kdcache train` under torchrun).
Each rank reads its own share of the store's blocks (`shuffled_blocks(..., rank, world_size)`) and every
variant's student + loss adapters are wrapped together in one `DistributedDataParallel`, so gradients
(including the feature adapters') are averaged across ranks. Rank 0 alone validates and writes files.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist

from kdcache.devices import launch_env, resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # we initialised the process group, so we tear it down

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1), else a single process."""
    _, world_size, local_rank = launch_env()
    device = resolve_device(device_name)
    if world_size <= 1:
        return DistContext(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)


def wrap(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    if not ctx.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def broadcast_object(value, ctx: DistContext):
    """Rank 0's `value` on every rank (e.g. whether to stop, the resume step)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across_ranks(values: dict[str, float], ctx: DistContext) -> dict[str, float]:
    """Average logged scalars over ranks (logging only; gradients are averaged by DDP)."""
    if not ctx.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                          device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, tensor.tolist())}


def shutdown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()

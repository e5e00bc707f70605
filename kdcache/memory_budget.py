"""Will a setting fit this machine? The memory a run must hold at once, checked before any work starts.

A setting that cannot fit (`--resolution 20000x20000`, `--feature-grid 100000x100000`, a huge `--batch-size`) is
refused in one line naming the option to lower, before a loader worker starts or anything is written, instead
of being found by the kernel's OOM killer (which may kill some other process first). Each stage lists its
`Need`s: the arrays it holds at once (decoded batches in the loader workers, tensors on the device, shards in
flight), never the libraries' own working memory, so an estimate is a lower bound: a refusal is certain, a
pass is no promise. Host needs are compared with the memory available now (`MemAvailable`), device needs with
the GPU's free memory; a device that is the CPU counts towards the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from kdcache.errors import KdcacheError
from kdcache.process_memory import proc_field


@dataclass(frozen=True)
class Need:
    """`size` bytes held at once for `what`; `lower` names the options that shrink it."""

    what: str
    size: int
    lower: str
    on_device: bool = False


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def available_host() -> int | None:
    """Bytes of memory available to a new allocation without swapping (Linux `MemAvailable`), else free pages;
    None where neither is known."""
    available = proc_field("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_device(device: torch.device) -> int | None:
    """Free bytes on a CUDA device; None for any other device (the CPU's memory is the host's)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def check_fits(needs: list[Need], device: torch.device, command: str) -> None:
    """Refuse in one line when `needs` exceed what this machine has (`check_host`, then `check_device`)."""
    check_host(needs, device, command)
    check_device(needs, device, command)


def check_host(needs: list[Need], device: torch.device, command: str) -> None:
    """The host's share of `needs` (all of them when `device` is not a GPU) against its available memory."""
    on_gpu = device.type == "cuda"
    _refuse_beyond([n for n in needs if not (n.on_device and on_gpu)], available_host(), "memory available",
                   command)


def check_device(needs: list[Need], device: torch.device, command: str) -> None:
    """The device's share of `needs` against a GPU's free memory (it initialises CUDA: call it once the device is
    in use, after the loader's workers have forked); nothing to check on another device."""
    on_device = [n for n in needs if n.on_device]
    if device.type == "cuda" and on_device:
        _refuse_beyond(on_device, available_device(device), f"free on {device}", command)


def _refuse_beyond(needs: list[Need], have: int | None, where: str, command: str) -> None:
    """One line naming the largest need and the options that lower it, when `needs` add up to more than `have`."""
    total = sum(n.size for n in needs)
    if have is not None and needs and total > have:
        largest = max(needs, key=lambda n: n.size)
        raise KdcacheError(
            f"{command} needs at least {format_bytes(total)} at once ({largest.what}: {format_bytes(largest.size)}), "
            f"but this machine has {format_bytes(have)} {where}: lower {largest.lower}"
        )

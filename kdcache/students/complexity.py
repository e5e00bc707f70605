"""Parameter counts and FLOPs of students, at a given input resolution.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts convolutions, matmuls and attention
(multiply and add as 2 FLOPs); element-wise ops, norms and resizes are not counted, as in most papers. We report
GMACs = FLOPs / 2 / 1e9 (what FastDepth, Hu et al. and timm's tables call "GFLOPs") and GFLOPs = FLOPs / 1e9.
`student_complexity` builds the model on the meta device: no weights are allocated and nothing is computed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, resolution: tuple[int, int]) -> int:
    """FLOPs of one forward pass of a (1, 3, H, W) input."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, *resolution, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def complexity(model: nn.Module, resolution: tuple[int, int] = (240, 320)) -> dict[str, Any]:
    """{"params", "flops", "gmacs", "gflops", "resolution"} of `model` at `resolution` (H, W)."""
    flops = count_flops(model, resolution)
    return {
        "params": count_parameters(model),
        "flops": flops,
        "gmacs": flops / 2 / 1e9,
        "gflops": flops / 1e9,
        "resolution": tuple(resolution),
    }


def student_complexity(name: str, resolution: tuple[int, int] = (240, 320), **overrides: Any) -> dict[str, Any]:
    """Complexity of student `name` without allocating it (meta device)."""
    from kdcache.students import create_student

    with torch.device("meta"):
        model = create_student(name, pretrained=False, **overrides)
    return complexity(model, resolution)


def describe_students(names: list[str] | None = None, resolution: tuple[int, int] = (240, 320)) -> list[dict[str, Any]]:
    """One row per student (all presets by default; `encoder+decoder` combos allowed): what `kdcache students`
    prints — name, encoder, decoder, width, params, GMACs at `resolution`, description."""
    from kdcache.students import STUDENTS, list_students, resolve_spec

    if resolution[0] <= 0 or resolution[1] <= 0:
        from kdcache.errors import KdcacheError

        raise KdcacheError(f"bad resolution {resolution[0]}x{resolution[1]}: both sides must be positive, e.g. 240x320.")
    rows = []
    for name in names or list_students():
        spec = resolve_spec(name)
        cost = student_complexity(name, resolution)
        description = STUDENTS.info(name).get("description", "") if name in STUDENTS else "custom combination"
        rows.append({"name": name, "encoder": spec.encoder, "decoder": spec.decoder, "width": spec.width,
                     "params": cost["params"], "gmacs": cost["gmacs"], "gflops": cost["gflops"],
                     "resolution": cost["resolution"], "description": description})
    return rows

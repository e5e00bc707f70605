"""`build_objective`: a weighted sum of registered losses, as one nn.Module.

The Objective owns its losses as sub-modules, so learned parts (the feature adapters) are in
`objective.parameters()` and go to the optimizer with the student, and `.to(device)` moves them too.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from kdcache.errors import KdcacheError
from kdcache.losses.loss_registry import LOSSES


class Objective(nn.Module):
    """forward(pred, target) -> (total, {name: detached value}); total = sum of weight * loss."""

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]):
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = dict(weights)

    def forward(self, pred: dict[str, Any], target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = None
        for name, loss in self.losses.items():
            value = loss(pred, target)
            parts[name] = value.detach()
            term = self.weights[name] * value
            total = term if total is None else total + term
        return total, parts

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={weight:g}" for name, weight in self.weights.items())


def _check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(weights, Mapping) or not weights:
        raise KdcacheError(f"loss weights must be a non-empty mapping like {{'silog': 1.0, 'kd': 1.0}}; "
                           f"known losses: {', '.join(LOSSES.names())}.")
    checked: dict[str, float] = {}
    for name, weight in weights.items():
        if name not in LOSSES:
            LOSSES.resolve(name)  # raises the one-line 'unknown loss ... Known: ...' error
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise KdcacheError(f"weight of loss '{name}' must be a number, got {weight!r}.") from None
        if not math.isfinite(value) or value < 0:
            raise KdcacheError(f"weight of loss '{name}' must be finite and >= 0, got {weight!r}.")
        if value > 0:
            checked[name] = value
    if not checked:
        raise KdcacheError("every loss weight is 0: give at least one loss a positive weight.")
    return checked


def build_objective(weights: Mapping[str, float], student_channels: Sequence[int] | None = None,
                    teacher_channels: Mapping[str, int] | None = None,
                    options: Mapping[str, Mapping[str, Any]] | None = None) -> Objective:
    """Objective for `weights` ({loss name: weight}); `options` passes keyword options per loss,
    e.g. {"kd": {"align": "lstsq"}, "feature": {"pairs": {"neck_3": 4}}}."""
    checked = _check_weights(weights)
    options = dict(options or {})
    stray = sorted(set(options) - set(checked))
    if stray:
        raise KdcacheError(f"loss options given for {', '.join(stray)}, which have no positive weight: "
                           f"add them to the weights or drop the options.")
    context = {"student_channels": student_channels, "teacher_channels": teacher_channels}
    losses = {name: create_loss(name, context, options.get(name, {})) for name in checked}
    return Objective(losses, checked)


def create_loss(name: str, context: Mapping[str, Any], options: Mapping[str, Any]) -> nn.Module:
    """LOSSES[name](**options), plus the entries of `context` its signature asks for (channel counts)."""
    _, factory, _ = LOSSES.resolve(name)
    parameters = inspect.signature(factory).parameters
    accepted = [p for p, spec in parameters.items() if spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(accepted) - set(context))
    if unknown:
        allowed = [p for p in accepted if p not in context]
        raise KdcacheError(f"bad options for loss '{name}': {', '.join(unknown)} (it accepts: "
                           f"{', '.join(allowed) or 'none'}).")
    wanted = {k: v for k, v in context.items() if k in parameters}
    return factory(**wanted, **dict(options))

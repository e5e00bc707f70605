"""The loss registry. An entry is an nn.Module class (or factory) called as

    factory(**options) -> nn.Module      (+ student_channels=, teacher_channels= if its signature names them)

and the module as `loss(pred, target) -> scalar tensor` (docs/architecture.md section 6). `create_loss` passes
the channel counts only to factories that ask for them, so an unknown option is always an error.

Every loss declares the target fields it reads, `register_loss("kd", targets=("teacher",))`, one or more of
`TARGETS`: training loads only those from the cache (`loss_targets`), and refuses a loss that needs a field the
cache lacks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from kdcache.registry import Registry

LOSSES: Registry = Registry("loss")
TARGETS = ("gt", "teacher", "features")


def register_loss(name: str | None = None, *, targets: Iterable[str], **info: Any) -> Callable:
    """Decorator: register a loss under `name` with the target fields it reads (a subset of `TARGETS`)."""
    declared = (targets,) if isinstance(targets, str) else tuple(targets)
    if not declared or not set(declared) <= set(TARGETS):
        raise ValueError(f"loss {name!r} must declare the targets it reads, one or more of {', '.join(TARGETS)}: "
                         f"register_loss({name!r}, targets=(\"gt\",)); got {targets!r}")
    return LOSSES.register(name, targets=declared, **info)


def loss_targets(name: str) -> frozenset[str]:
    """The target fields loss `name` reads (a one-line error with suggestions for an unknown name)."""
    return frozenset(LOSSES.info(name)["targets"])


def list_losses() -> list[str]:
    return LOSSES.names()

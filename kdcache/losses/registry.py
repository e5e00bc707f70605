"""The loss registry. An entry is an nn.Module class (or factory) called as

    factory(**options) -> nn.Module      (+ student_channels=, teacher_channels= if its signature names them)

and the module as `loss(pred, target) -> scalar tensor` (docs/architecture.md section 6). `create_loss` passes
the channel counts only to factories that ask for them, so an unknown option is always an error.
Registration metadata `targets=("gt" | "teacher" | "features", ...)` says which target fields a loss reads,
so training loads only those (`LOSSES.info(name)["targets"]`).
"""

from __future__ import annotations

from kdcache.registry import Registry

LOSSES: Registry = Registry("loss")
register_loss = LOSSES.register


def list_losses() -> list[str]:
    return LOSSES.names()

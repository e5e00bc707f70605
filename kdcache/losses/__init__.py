"""Training losses: GT losses, distillation in the teacher's space, gradient matching, feature and attention
transfer, and `build_objective` that weighs them (docs/architecture.md section 6).

Every loss is `loss(pred, target) -> scalar` with pred = {"depth": (B,1,H,W), "features": [maps]} and target =
{"gt", "valid", "has_gt", "teacher", "teacher_ok", "teacher_space", "features": {layer: map}} (+ optional
"gt_space": "depth" (default) | "disparity"). Samples without GT / without a valid teacher contribute nothing.
"""

from __future__ import annotations

# Registration order is the listing order: GT losses first, then distillation.
from kdcache.losses import gt  # noqa: F401,I001
from kdcache.losses import distill, feature  # noqa: F401
from kdcache.losses.objective import Objective, build_objective, create_loss
from kdcache.losses.loss_registry import LOSSES, list_losses, loss_targets, register_loss

__all__ = ["LOSSES", "Objective", "build_objective", "create_loss", "list_losses", "loss_targets", "register_loss"]

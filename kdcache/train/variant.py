"""One variant of a run: its student, loss objective, optimizer, schedule, EMA and private RNG.

Variants share each batch but nothing else. Each selects its own sources' rows (a fixed row index: every
batch has the same layout), and runs with its own torch RNG state (swapped in around its step), so a
variant trained next to others follows exactly the same trajectory as when trained alone.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from kdcache.train.checkpointing import capture_rng, restore_rng
from kdcache.train.train_config import TrainConfig, VariantConfig
from kdcache.train.distributed import DistContext, wrap
from kdcache.losses.loss_registry import loss_targets


class StudentWithObjective(nn.Module):
    """Student + loss (with its trainable feature adapters) as one module, so DDP syncs both."""

    def __init__(self, student: nn.Module, objective: nn.Module, wants_features: bool, amp_dtype):
        super().__init__()
        self.student, self.objective = student, objective
        self.wants_features, self.amp_dtype = wants_features, amp_dtype

    def forward(self, image: torch.Tensor, target: dict[str, Any]):
        enabled = self.amp_dtype is not None
        with torch.autocast(image.device.type, dtype=self.amp_dtype or torch.float32, enabled=enabled):
            if self.wants_features:
                depth, features = self.student(image, return_features=True)
            else:
                depth, features = self.student(image), []
        # Losses run in fp32: logs and variances of half-precision maps are where AMP training goes wrong.
        pred = {"depth": depth.float(), "features": [f.float() for f in features]}
        total, parts = self.objective(pred, target)
        # Ties the loss to the graph even when no sample of the batch had a usable target,
        # so backward (and DDP's all-reduce) always runs on every rank.
        return total + 0.0 * depth.float().mean(), parts


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and norm scales (1-d tensors), as usual for AdamW."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class ModelEMA:
    """Exponential moving average of a student's parameters and buffers (decay warmed up early on)."""

    def __init__(self, model: nn.Module, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]


def output_space(variant: VariantConfig, source_space: dict[str, str | None], teacher_space: str | None) -> str:
    """"depth" when metric GT supervises the variant; else the space of whatever does (disparity GT / teacher)."""
    uses_gt = any("gt" in loss_targets(n) for n in variant.loss)
    spaces = {source_space.get(s) for s in variant.sources} - {None}
    if uses_gt and "depth" in spaces:
        return "depth"
    if uses_gt and spaces:
        return "disparity"
    return teacher_space or "disparity"


class VariantTrainer:
    def __init__(self, variant: VariantConfig, config: TrainConfig, ctx: DistContext, total_steps: int,
                 row_index: torch.Tensor, teacher_channels: dict[str, int], teacher_space: str | None,
                 out_space: str, amp_dtype, gt_space: str = "depth"):
        from kdcache.losses import build_objective
        from kdcache.students import create_student

        self.variant, self.ctx, self.total_steps = variant, ctx, total_steps
        self.teacher_space, self.output_space, self.gt_space = teacher_space, out_space, gt_space
        self.row_index = row_index.to(ctx.device)
        torch.manual_seed(variant.seed)  # the same initial weights wherever and with whatever it trains
        self.student = create_student(variant.student, pretrained=variant.pretrained, **variant.student_overrides)
        self.wants_features = any("features" in loss_targets(n) for n in variant.loss)
        channels = teacher_channels if self.wants_features else {}
        objective = build_objective(variant.loss, list(self.student.feature_channels), channels,
                                    variant.loss_options or None)
        self.core = StudentWithObjective(self.student, objective, self.wants_features, amp_dtype).to(ctx.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.core.to(memory_format=self.memory_format)
        if config.sync_bn and ctx.enabled and ctx.device.type == "cuda":  # SyncBatchNorm is CUDA-only
            self.core = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.core)
            self.student = self.core.student
        self.model = wrap(self.core, ctx)
        self.optimizer = torch.optim.AdamW(param_groups(self.core, variant.weight_decay), lr=variant.lr)
        warmup = int(config.warmup) if config.warmup >= 1 else int(round(config.warmup * total_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(total_steps, max(1, warmup), config.min_lr_ratio)
        )
        self.ema = ModelEMA(self.student, variant.ema) if variant.ema else None
        self.clip = config.clip_grad
        # A private RNG stream per (variant, rank): dropout / drop-path never depend on other variants.
        self.rng_state = _fresh_rng_state(variant.seed * 1_000_003 + ctx.rank, ctx.device)
        self.wall = 0.0
        self.last_parts: dict[str, torch.Tensor] = {}

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.model if self.ema else self.student

    def target(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The loss contract's target dict, restricted to this variant's rows."""
        rows = self.row_index
        pick = lambda key: batch[key].index_select(0, rows)  # noqa: E731
        image = pick("image")
        zeros = torch.zeros(image.shape[0], 1, *image.shape[2:], device=image.device)
        return {
            "gt": pick("gt") if "gt" in batch else zeros,
            "valid": pick("valid") if "valid" in batch else zeros.bool(),
            "has_gt": pick("has_gt"),
            "teacher": pick("teacher") if "teacher" in batch else zeros,
            "teacher_ok": pick("teacher_ok"),
            "teacher_space": self.teacher_space or "disparity",
            "gt_space": self.gt_space,
            "features": {k.split("/", 1)[1]: pick(k) for k in batch if k.startswith("features/")},
        }

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimizer step on this variant's rows; returns detached loss terms (no device sync)."""
        started = time.perf_counter()
        restore_rng(self.rng_state, self.ctx.device)
        self.model.train()
        target = self.target(batch)
        image = batch["image"].index_select(0, self.row_index).contiguous(memory_format=self.memory_format)
        total, parts = self.model(image, target)
        total.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.core.parameters(), self.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema:
            self.ema.update(self.student)
        self.rng_state = capture_rng(self.ctx.device)
        self.last_parts = {"loss": total.detach(), **{f"loss/{k}": v.detach() for k, v in parts.items()}}
        self.wall += time.perf_counter() - started
        return self.last_parts

    def last_loss(self) -> float:
        value = self.last_parts.get("loss")
        return float("nan") if value is None else float(value)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "core": self.core.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "wall": self.wall,
        }

    def load_state_dict(self, state: dict[str, Any], rng_state: dict[str, Any]) -> None:
        self.core.load_state_dict(state["core"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        self.wall = state.get("wall", 0.0)
        self.rng_state = rng_state


def _fresh_rng_state(seed: int, device: torch.device) -> dict[str, Any]:
    saved = capture_rng(device)
    torch.manual_seed(seed)
    fresh = capture_rng(device)
    restore_rng(saved, device)
    return fresh

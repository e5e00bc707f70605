"""The training loop: one shared, augmented batch per step, fed to every variant in turn.

Per step: wait for the loader (timed, to report the data-wait fraction), move the batch to the device
once, then each variant takes its rows and does forward / backward / clip / AdamW / schedule / EMA.
At every epoch end rank 0 validates, writes `checkpoints/last` (and `best` when the validation AbsRel
improved), metrics and curves; `checkpoint_every` adds mid-epoch `last` checkpoints for long epochs.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from kdcache import __version__
from kdcache.atomic import write_text
from kdcache.console import log, progress
from kdcache.devices import default_workers
from kdcache.errors import KdcacheError, check_writable
from kdcache.memory_budget import check_fits
from kdcache.store import lock
from kdcache.students import check_pretrained
from kdcache.train import checkpointing as ckpt
from kdcache.train.cache_plan import CacheInfo, inspect_cache, loader_plan, memory_needs, steps_per_epoch, total_steps
from kdcache.train.curves import MetricsLog, write_curves
from kdcache.train.distributed import (DistContext, barrier, broadcast_object, init_distributed, mean_across_ranks,
                                       shutdown)
from kdcache.train.loader import LoaderPlan, iter_validation, make_loader
from kdcache.train.train_config import TrainConfig, config_json, variant_fingerprint
from kdcache.train.reuse import run_extra
from kdcache.train.validate import batch_abs_rel
from kdcache.train.variant import VariantTrainer, output_space


@dataclass
class VariantResult:
    name: str
    student: str
    run_dir: str
    output_space: str
    steps: int
    epochs: float
    best_val_abs_rel: float | None
    best_step: int | None
    final_loss: float | None
    wall_time_s: float  # the whole run's wall time (shared by all variants of the pass)
    train_time_s: float  # the step loop: wall minus set-up, loader start-up, validation, checkpoints, curves
    compute_time_s: float  # this variant's own forward/backward/step time
    data_wait_fraction: float  # share of the step loop spent waiting for the loader (after its first batch)
    loader_startup_s: float  # wait for the first batch (workers starting, first windows read)


def train_config(config: TrainConfig) -> list[VariantResult]:
    check_writable(config.out)  # before the cache is read or a model built
    for variant in config.variants:  # and before an --overwrite clears anything
        if variant.pretrained:
            check_pretrained(variant.student, **variant.student_overrides)
    ctx = init_distributed(config.device)
    try:
        # Rank 0 owns the run folder: a second run on the same --out is refused before it reads or writes anything.
        with lock.training(config.out) if ctx.is_main else contextlib.nullcontext():
            return Run(config, ctx).execute()
    finally:
        shutdown(ctx)


def resolve_amp(amp: str, device: torch.device):
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if amp in ("auto", "bf16") else torch.float16


def row_indices(plan: LoaderPlan, sources: list[str]) -> torch.Tensor:
    """Rows of the fixed batch layout that belong to `sources`."""
    rows, start = [], 0
    for source in plan.sources:
        if source.name in sources:
            rows.extend(range(start, start + source.count))
        start += source.count
    return torch.tensor(rows, dtype=torch.long)


class Run:
    def __init__(self, config: TrainConfig, ctx: DistContext):
        self.created = time.perf_counter()
        self.config, self.ctx = config, ctx
        self.info: CacheInfo = inspect_cache(config)
        workers = default_workers("train") if config.workers is None else config.workers
        self._check_memory(workers)  # before a checkpoint is cleared, a model built or a worker started
        self.per_epoch = steps_per_epoch(config, self.info, ctx.world_size)
        self.total = total_steps(config, self.per_epoch)
        self.amp_dtype = resolve_amp(config.amp, ctx.device)
        self.dirs = [config.variant_dir(v) for v in config.variants]
        self.states = self._resume_states()
        self.start_step = self.states[0]["step"] if self.states else 0
        lanes = self.states[0]["lanes"] if self.states else max(1, workers)
        if self.states and workers and lanes != workers:
            log(f"resuming with {lanes} loader workers (the interrupted run's count) to replay its data order")
        self.workers = 0 if workers == 0 else lanes
        self.plan = loader_plan(config, self.info, ctx.rank, ctx.world_size, lanes)
        self.trainers = [self._trainer(v) for v in config.variants]
        self.best = [(s.get("best_val"), s.get("best_step")) for s in self.states] or [(None, None)] * len(self.dirs)
        self.logs = [self._open_log(d) for d in self.dirs] if ctx.is_main else []
        self.data_wait = 0.0
        self.loader_startup: float | None = None
        self.epoch_end_time = 0.0

    # --- set-up -------------------------------------------------------------------------------------------
    def _trainer(self, variant) -> VariantTrainer:
        space = output_space(variant, self.info.source_space, self.info.teacher_space)
        spaces = [self.info.source_space[s] for s in variant.sources if self.info.source_space.get(s)]
        trainer = VariantTrainer(
            variant, self.config, self.ctx, self.total, row_indices(self.plan, variant.sources),
            self.info.feature_channels, self.info.teacher_space, space, self.amp_dtype,
            gt_space=spaces[0] if spaces else "depth",
        )
        if self.states:
            state = self.states[self.config.variants.index(variant)]
            try:
                trainer.load_state_dict(state["variant"], state["rng"][self.ctx.rank])
            except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
                raise KdcacheError(f"--resume: the trainer state in {self.config.variant_dir(variant)} does not "
                                   f"fit variant '{variant.name}' ({type(err).__name__}): start a new --out") from None
        return trainer

    def _check_memory(self, workers: int) -> None:
        """Refuse settings this machine cannot hold (`kdcache.memory_budget`) in one line."""
        config, ctx = self.config, self.ctx
        plan = loader_plan(config, self.info, ctx.rank, ctx.world_size, max(1, workers))
        needs = memory_needs(config, plan, self.info.manifest["shard_size"], workers, ctx.device)
        check_fits(needs, ctx.device, "kdcache train")

    def _fingerprint(self, variant) -> dict[str, Any]:
        return variant_fingerprint(self.config, variant, self.total, self.ctx.world_size, self.info.identity)

    def _resume_states(self) -> list[dict[str, Any]]:
        existing = [ckpt.find_resume(d) for d in self.dirs]
        if not self.config.resume:
            if any(existing) and not self.config.overwrite:
                raise KdcacheError(
                    f"{self.config.out} already holds a run: pass --resume to continue it, --overwrite to replace it, "
                    "or choose another --out"
                )
            if self.ctx.is_main:
                for directory in self.dirs:
                    shutil.rmtree(directory / "checkpoints", ignore_errors=True)
            return []
        if not any(existing):
            log(f"nothing to resume in {self.config.out}: starting from step 0")
            return []
        if not all(existing):
            missing = [str(d) for d, e in zip(self.dirs, existing) if not e]
            raise KdcacheError(f"--resume: no checkpoint in {missing}: the variants differ from the interrupted run's")
        states = [ckpt.read_state(e) for e in existing]
        for variant, state in zip(self.config.variants, states):
            self._check_same_cache(state["fingerprint"].get("cache_identity"))
            if state["fingerprint"] != self._fingerprint(variant):
                changed = sorted(k for k in state["fingerprint"]
                                 if state["fingerprint"][k] != self._fingerprint(variant).get(k))
                raise KdcacheError(
                    f"--resume: the run in {self.config.out} was started with different {', '.join(changed)}: "
                    "resume with the original options or start a new --out"
                )
        if len({s["step"] for s in states}) != 1:
            raise KdcacheError(f"--resume: the variants in {self.config.out} stopped at different steps: "
                               "delete the run and start again")
        log(f"resuming {self.config.out} at step {states[0]['step']}/{self.total}")
        return states

    def _check_same_cache(self, recorded: str | None) -> None:
        """Refuse to continue a run on other targets: the cache at its path was rebuilt (another teacher, other
        options or split sizes) since the run started."""
        if recorded != self.info.identity:
            teacher = (self.info.teacher or {}).get("name", "none")
            raise KdcacheError(
                f"--resume: cache {self.config.cache} is not the one the run in {self.config.out} started on "
                f"(cache identity {recorded} then, {self.info.identity} now, teacher '{teacher}'): it was rebuilt "
                "with another teacher, options or splits; resume with the original cache or start a new --out"
            )

    def _open_log(self, directory: Path) -> MetricsLog:
        directory.mkdir(parents=True, exist_ok=True)
        return MetricsLog(directory / "metrics.jsonl", self.start_step if self.states else None)

    def _write_configs(self) -> None:
        for variant, directory, trainer in zip(self.config.variants, self.dirs, self.trainers):
            extra = run_extra(self.config, self.info, variant, self.ctx.world_size)
            extra["encoder_weights"] = trainer.student.encoder.initial_weights
            write_text(directory / "config.json", config_json(self.config, variant, extra))

    # --- the loop -----------------------------------------------------------------------------------------
    def execute(self) -> list[VariantResult]:
        if self.ctx.is_main:
            self._write_configs()
            layout = ", ".join(f"{s.count} {s.name}" for s in self.plan.sources)
            log(f"training {len(self.trainers)} variant(s) on {self.config.cache}: batch of {layout} per rank "
                f"x {self.ctx.world_size} rank(s), {self.per_epoch} steps/epoch, {self.total} steps, "
                f"{self.ctx.device}, amp {self.amp_dtype or 'off'}")
        pin = self.ctx.device.type == "cuda"
        loader = make_loader(self.plan, self.start_step, self.total, self.workers, pin)
        started = time.perf_counter()
        samples_per_step = self.config.batch_size * self.ctx.world_size
        sums = [dict() for _ in self.trainers]
        with progress(unit="img", disable=self._progress_disabled()) as bar:
            task = bar.add_task("train", total=self.total * samples_per_step,
                                completed=self.start_step * samples_per_step)
            interval_start, waited = time.perf_counter(), time.perf_counter()
            for step, batch in loader:
                if self.loader_startup is None:  # worker start-up and first reads: paid once per run
                    self.loader_startup = time.perf_counter() - waited
                else:
                    self.data_wait += time.perf_counter() - waited
                batch = {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}
                for trainer, acc in zip(self.trainers, sums):
                    # Loss terms stay on the device until the log step: no per-step host sync on GPUs.
                    for key, value in trainer.train_step(batch).items():
                        acc[key] = acc[key] + value if key in acc else value.clone()
                done = step + 1
                bar.update(task, advance=samples_per_step)
                if done % self.config.log_every == 0 or done == self.total:
                    self._check_finite(done)
                    bar.update(task, description=self._describe())
                    elapsed = time.perf_counter() - interval_start
                    count = (done - 1) % self.config.log_every + 1
                    self._log_train(done, sums, count, count * samples_per_step / max(elapsed, 1e-9), started)
                    sums = [dict() for _ in self.trainers]
                    interval_start = time.perf_counter()
                pause = time.perf_counter()
                if done % self.per_epoch == 0 or done == self.total:
                    self._end_epoch(done)
                elif self.config.checkpoint_every and done % self.config.checkpoint_every == 0:
                    self._save(done, validate=False)
                self.epoch_end_time += time.perf_counter() - pause
                waited = time.perf_counter()
        self.best = broadcast_object(self.best, self.ctx)  # only rank 0 validated
        return self._results(time.perf_counter() - started)

    def _progress_disabled(self) -> bool | None:
        """Rank 0 only; None lets the console decide (a terminal shows it, CI logs do not)."""
        if not self.ctx.is_main:
            return True
        return None if self.config.progress is None else not self.config.progress

    def _check_finite(self, step: int) -> None:
        for trainer in self.trainers:
            loss = trainer.last_loss()
            if not math.isfinite(loss):
                raise KdcacheError(f"variant '{trainer.variant.name}' loss became {loss} by step {step}: "
                                   "lower its lr, or use --amp off if it only happens with AMP")

    def _describe(self) -> str:
        losses = "/".join(f"{t.last_loss():.3g}" for t in self.trainers)
        return f"train loss {losses} lr {self.trainers[0].lr:.2e}"

    def _log_train(self, step: int, sums, count: int, rate: float, started: float) -> None:
        wall = time.perf_counter() - started - self.epoch_end_time - (self.loader_startup or 0.0)
        for index, (trainer, acc) in enumerate(zip(self.trainers, sums)):
            means = {k: float(v) / count for k, v in acc.items()}
            means = mean_across_ranks(means, self.ctx)
            if self.ctx.is_main:
                self.logs[index].append({
                    "kind": "train", "step": step, "epoch": step / self.per_epoch, "lr": trainer.lr,
                    **means, "samples_per_s": rate, "data_wait_fraction": self.data_wait / max(wall, 1e-9),
                })

    def _end_epoch(self, step: int) -> None:
        self._save(step, validate=bool(self.config.val))
        if self.ctx.is_main:
            for directory, trainer in zip(self.dirs, self.trainers):
                write_curves(directory / "metrics.jsonl", directory / "curves.png", trainer.variant.name)
        barrier(self.ctx)

    def _validate(self) -> list[float]:
        """Mean AbsRel of every variant's eval model (EMA when on) on the first `val_max_samples` of --val."""
        split_space = self._val_space()
        scores = [[] for _ in self.trainers]
        models = [t.eval_model for t in self.trainers]
        for model in models:
            model.eval()
        with torch.no_grad():
            for batch in iter_validation(self.config.cache, self.config.val, self.config.val_max_samples,
                                         self.config.batch_size):
                image = batch["image"].to(self.ctx.device)
                for model, trainer, found in zip(models, self.trainers, scores):
                    with torch.autocast(image.device.type, dtype=self.amp_dtype or torch.float32,
                                        enabled=self.amp_dtype is not None):
                        pred = model(image)
                    found += batch_abs_rel(pred.float().cpu(), batch["gt"], batch["valid"], trainer.output_space,
                                           split_space)
        return [sum(s) / len(s) if s else float("nan") for s in scores]

    def _val_space(self) -> str:
        from kdcache.store import open_store

        return open_store(self.config.cache).split(self.config.val).space or "depth"

    def _save(self, step: int, validate: bool) -> None:
        rng = [_gather(t.rng_state, self.ctx) for t in self.trainers]
        if not self.ctx.is_main:
            barrier(self.ctx)
            return
        scores = self._validate() if validate else [None] * len(self.trainers)
        for index, (trainer, directory, score) in enumerate(zip(self.trainers, self.dirs, scores)):
            best_val, best_step = self.best[index]
            improved = score is not None and math.isfinite(score) and (best_val is None or score < best_val)
            if improved:
                best_val, best_step = score, step
                self.best[index] = (best_val, best_step)
            if score is not None:
                self.logs[index].append({"kind": "val", "step": step, "epoch": step / self.per_epoch,
                                         "abs_rel": score, "best": improved})
            meta = self._meta(trainer, step, score)
            state = {
                "step": step, "lanes": self.plan.lanes, "fingerprint": self._fingerprint(trainer.variant),
                "variant": trainer.state_dict(), "rng": rng[index], "best_val": best_val, "best_step": best_step,
            }
            # `best` first: if writing `last` fails (full disk), the resumed run redoes this step and
            # rewrites the same `best`; the other order could leave a state whose best_step has no checkpoint.
            if improved:
                ckpt.write_checkpoint(directory / "checkpoints" / "best", trainer.eval_model, meta, None)
            ckpt.write_checkpoint(directory / "checkpoints" / "last", trainer.eval_model, meta, state)
        barrier(self.ctx)

    def _meta(self, trainer: VariantTrainer, step: int, score: float | None) -> dict[str, Any]:
        return {
            "output_space": trainer.output_space, "student": trainer.variant.student,
            "variant": trainer.variant.name, "step": step, "epoch": step / self.per_epoch,
            "val_split": self.config.val, "val_abs_rel": score, "cache": self.config.cache,
            "teacher": (self.info.teacher or {}).get("name", "none"), "resolution": list(self.info.resolution),
            "loss": trainer.variant.loss, "sources": trainer.variant.sources, "ema": trainer.variant.ema,
            "encoder_weights": trainer.student.encoder.initial_weights, "kdcache_version": __version__,
        }

    def _results(self, wall: float) -> list[VariantResult]:
        startup = self.loader_startup or 0.0
        loop = max(wall - self.epoch_end_time - startup, 1e-9)
        wall = time.perf_counter() - self.created
        results = []
        for trainer, directory, (best_val, best_step) in zip(self.trainers, self.dirs, self.best):
            results.append(VariantResult(
                name=trainer.variant.name, student=trainer.variant.student, run_dir=str(directory),
                output_space=trainer.output_space, steps=self.total, epochs=self.total / self.per_epoch,
                best_val_abs_rel=best_val, best_step=best_step,
                final_loss=trainer.last_loss() if trainer.last_parts else None,
                wall_time_s=wall, train_time_s=loop, compute_time_s=trainer.wall,
                data_wait_fraction=self.data_wait / loop,
                loader_startup_s=startup,
            ))
        return results


def _gather(value, ctx: DistContext) -> list:
    """Every rank's `value`, in rank order (on every rank)."""
    if not ctx.enabled:
        return [value]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, value)
    return out

"""The demo's steps, each one a library call with the CLI command that does the same thing.

A finished step leaves `steps/<key>.json` (its result, wall time and fingerprint) under the output folder,
written only after the step's own outputs are complete, so rerunning `kdcache demo` reuses what is done and
redoes the rest (precompute and training are themselves resumable). A step's fingerprint hashes what it does
(its training config, its command) and the fingerprint of the step before it: after an edit of the experiment,
the edited step and every later one are redone, the earlier ones reused. A redone training step still keeps the
student rows whose training did not change (`kdcache.train.reuse`), so adding a row trains just that row.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from kdcache.console import log
from kdcache.atomic import write_text
from kdcache.demo.plan import DemoPlan
from kdcache.train.modes import MODES
from kdcache.errors import writing_to
from kdcache.precompute.precompute_config import PrecomputeConfig
from kdcache.train.train_config import TrainConfig


@dataclass
class Step:
    key: str
    title: str
    command: str  # the CLI command that does the same thing
    run: Callable[[bool], Any]  # run(fresh) -> a JSON-able summary; fresh: discard outputs of an outdated run
    share: float  # rough share of the demo's time, for the ETA
    what: Any = None  # JSON-able description of what the step computes (default: its command), for the fingerprint
    config: Any = None  # the PrecomputeConfig / TrainConfig / EvalConfig the step runs (its command is derived from it)


def write_json(path: Path, payload: Any) -> None:
    """Atomic JSON write: a killed demo never leaves a half-written marker or report."""
    write_text(path, json.dumps(payload, indent=2, default=str))


class DemoSteps:
    """Builds the demo's steps for one plan and output folder."""

    def __init__(self, plan: DemoPlan, out: Path, workers: int | None = None):
        self.plan, self.out = plan, out
        self.workers = workers
        self.gt_store = out / "cache" / "gt.zarr"
        self.teacher_store = out / "cache" / "teacher.zarr"
        self.teacher_run = out / "runs" / "teacher"
        self.students_run = out / "runs" / "students"

    # -- step 1 and 3: precompute ------------------------------------------------------------------
    def precompute_config(self, teacher: str, splits: list[str], store: Path, cache=None) -> PrecomputeConfig:
        """The `kdcache precompute` settings of a cache step: the synthetic world rendered at the cache resolution."""
        options = {}
        if cache is not None:
            options = {"flip_tta": cache.flip_tta, "feature_layers": cache.features,
                       "feature_budget": cache.feature_budget}
        # workers None: precompute's own default, as on the CLI.
        return PrecomputeConfig(teacher, splits, str(store), resolution=tuple(self.plan.resolution), batch_size=32,
                                shard_size=64, split_options=self.plan.split_options, workers=self.workers, **options)

    def _precompute_step(self, key: str, title: str, teacher: str, splits: list[str], store: Path, share: float,
                         cache=None) -> Step:
        config = self.precompute_config(teacher, splits, store, cache)

        def run(fresh: bool) -> dict:
            from kdcache.precompute import precompute

            if fresh:  # made with other settings: a store is never refilled with differently made targets
                shutil.rmtree(store, ignore_errors=True)
            precompute(config)
            return {"store": str(store)}

        # `workers` changes how fast, not what: it stays out of the fingerprint.
        return Step(key, title, config.command(), run, share, replace(config, workers=None).command(), config)

    # -- step 2 and 4: training --------------------------------------------------------------------
    def _train_config(self, cache: Path, out: Path, sources: dict[str, str], stage, variants: list[dict]) -> dict:
        config = {
            "cache": str(cache),
            "out": str(out),
            "val": self.plan.splits["val"],
            "epochs": stage.epochs,
            "batch_size": stage.batch_size,
            "lr": stage.lr,
            "resolution": list(self.plan.resolution),
            "sources": sources,
            # Loss options belong to the variants that use those losses (see students_config).
            **{k: v for k, v in stage.options.items() if k != "loss_options"},
        }
        if self.workers is not None:
            config["workers"] = self.workers
        if len(sources) > 1:
            share = self.plan.aux_ratio / (len(sources) - 1)
            config["mix"] = {name: (1 - self.plan.aux_ratio if name == "labeled" else share) for name in sources}
        config["variant"] = variants
        return config

    def _train_step(self, key: str, title: str, raw: dict, share: float) -> Step:
        path = self.out / "configs" / f"{key}.toml"
        config = TrainConfig.from_dict(raw)  # refuses a bad experiment before any step runs

        def run(fresh: bool) -> dict:
            from kdcache.train import train
            from kdcache.train.reuse import FINISHED, PARTIAL, only, variant_status

            write_text(path, config.to_toml())
            # Variants trained exactly this way are kept (an edited experiment retrains only its edited rows);
            # the others resume when all of them stopped part-way, else start over.
            status = variant_status(config)
            todo = [name for name, state in status.items() if state != FINISHED]
            if todo:
                resume = all(status[name] == PARTIAL for name in todo)
                train(replace(only(config, todo), overwrite=not resume, resume=resume))
            return {"runs": [str(config.variant_dir(v)) for v in config.variants],
                    "reused": [name for name, state in status.items() if state == FINISHED]}

        # `workers` changes how fast, not what: it stays out of the fingerprint.
        what = {k: v for k, v in raw.items() if k != "workers"}
        return Step(key, title, TrainConfig.file_command(path), run, share, what, config)

    def teacher_config(self) -> dict:
        stage = self.plan.teacher
        variant = {"name": "teacher", "student": stage.preset, "loss": stage.losses["gt"]}
        return self._train_config(self.gt_store, self.teacher_run, {"labeled": self.plan.teacher_train}, stage,
                                  [variant])

    def variant_entry(self, name: str, preset: str, row_name: str, seed: int = 0) -> dict:
        """One `[[variant]]` of a train config: student `preset` trained the `row_name` way (a training mode)."""
        stage = self.plan.student
        loss = stage.row_loss(row_name)
        variant = {"name": name, "student": preset, "sources": list(MODES[row_name].sources), "loss": loss,
                   "seed": seed}
        options = {k: v for k, v in stage.options.get("loss_options", {}).items() if k in loss}
        if options:
            variant["loss_options"] = options
        return variant

    def students_run_dir(self, seed: int) -> Path:
        """runs/students for seed 0 (a one-seed demo's folder), runs/students-seed<N> for the others."""
        return self.students_run if seed == 0 else self.out / "runs" / f"students-seed{seed}"

    def students_config(self, seed: int = 0) -> dict:
        """Every student row in one pass over the cache; `seed` sets the initialisation, batch order and
        augmentation of the whole pass (one seed's rows share them, so their gaps are paired comparisons)."""
        stage = self.plan.student
        sources = {"labeled": self.plan.splits["train"], "aux": self.plan.splits["aux"],
                   "aux-far": self.plan.splits["aux-far"]}
        variants = [self.variant_entry(name, stage.preset, name, seed) for name in self.plan.rows]
        config = self._train_config(self.teacher_store, self.students_run_dir(seed), sources, stage, variants)
        config["seed"] = seed
        return config

    def distil_config(self, preset: str, recipe: str, out: Path, **stage_changes) -> dict:
        """A train config distilling one `preset` from this demo's teacher cache with one recipe (bench/pareto.py).

        `stage_changes` (epochs, batch_size, lr) override the plan's student stage."""
        from dataclasses import replace

        stage = replace(self.plan.student, **stage_changes)
        roles = {"labeled": "train", "aux": "aux", "aux-far": "aux-far"}
        sources = {name: self.plan.splits[roles[name]] for name in MODES[recipe].sources}
        return self._train_config(self.teacher_store, out, sources, stage, [self.variant_entry(preset, preset, recipe)])

    # -- the plan ----------------------------------------------------------------------------------
    def teacher_steps(self) -> list[Step]:
        """Steps 1-3: the GT store, the teacher trained on it, the teacher's cache (what bench/pareto.py reuses)."""
        plan = self.plan
        return [
            self._precompute_step("gt-store", "cache images and ground truth (no teacher)", "none",
                                  plan.labeled_splits, self.gt_store, 0.05),
            self._train_step("teacher", f"train the big teacher ({plan.teacher.preset}) on ground truth",
                             self.teacher_config(), 0.30),
            self._precompute_step("teacher-cache", "run the teacher once over labeled + aux + aux-far images",
                                  f"ckpt:{self.teacher_run}", plan.cached_splits, self.teacher_store, 0.12,
                                  cache=plan.cache),
        ]

    def steps(self, evaluate_step: Step, report_step: Step) -> list[Step]:
        plan = self.plan
        share = 0.43 / plan.seeds
        students = [
            self._train_step("students" if seed == 0 else f"students-seed{seed}",
                             f"distil {plan.student.preset} {len(plan.rows)} ways in one pass over the cache"
                             + (f" (seed {seed})" if plan.seeds > 1 else ""), self.students_config(seed), share)
            for seed in plan.seed_list
        ]
        return self.teacher_steps() + [
            *students,
            evaluate_step,
            report_step,
        ]

    def student_runs(self, seed: int = 0) -> dict[str, Path]:
        return {name: self.students_run_dir(seed) / name for name in self.plan.rows}


def run_steps(steps: list[Step], out: Path, results: dict[str, dict]) -> None:
    """Run each step unless its marker says it is complete; log progress with an ETA measured on this machine.

    `results[key]` gets each step's summary, wall time, command and title as soon as it is known, so a
    later step (the report) can read what the earlier ones did, whether reused or fresh.
    """
    pace = Pace()
    fingerprint = ""
    for index, step in enumerate(steps, 1):
        marker = out / "steps" / f"{step.key}.json"
        header = f"[bold cyan][{index}/{len(steps)}][/] {step.title}"
        fingerprint = _fingerprint(step, fingerprint)
        previous = json.loads(marker.read_text()) if marker.exists() else None
        remaining = sum(s.share for s in steps[index - 1:])
        if previous is not None and previous.get("fingerprint") == fingerprint:
            results[step.key] = previous | {"title": step.title}
            log(f"{header} [green]complete, reused[/]")
            continue
        outdated = previous is not None
        note = " [yellow](the experiment changed since it ran: redone)[/]" if outdated else ""
        log(f"{header}{note}{pace.eta(remaining)}\n    [dim]$ {step.command}[/]")
        step_start = time.perf_counter()
        with writing_to(out):  # a full disk: rerunning the demo reuses the finished steps and resumes the others
            summary = step.run(outdated) or {}
        seconds = time.perf_counter() - step_start
        pace.record(step.share, seconds)
        result = {"summary": summary, "seconds": round(seconds, 1), "command": step.command,
                  "fingerprint": fingerprint}
        write_json(marker, result)
        results[step.key] = result | {"title": step.title}


class Pace:
    """The demo's ETA from this machine's measured pace: the seconds the steps run in this invocation took per unit
    of their (rough, relative) `share`, times the share still to do. Reused steps took no time and tell nothing;
    before a step has run there is no measurement and no ETA, rather than a constant that a busy machine
    makes wrong (the steps' own progress lines give their rate and ETA meanwhile)."""

    def __init__(self):
        self.share = self.seconds = 0.0

    def record(self, share: float, seconds: float) -> None:
        self.share, self.seconds = self.share + share, self.seconds + seconds

    def eta(self, remaining_share: float) -> str:
        if self.share <= 0 or self.seconds <= 0:
            return ""
        left = self.seconds / self.share * remaining_share
        return f" [dim](this run so far {self.seconds:.0f} s; at its pace about {left / 60:.1f} min left)[/]"


def _fingerprint(step: Step, previous: str) -> str:
    """sha256 of what the step computes, chained to the previous step's fingerprint."""
    what = json.dumps(step.command if step.what is None else step.what, sort_keys=True, default=str)
    return hashlib.sha256(f"{previous}\n{step.key}\n{what}".encode()).hexdigest()[:16]

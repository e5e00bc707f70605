"""The demo's steps, each one a library call with the CLI command that does the same thing.

A finished step leaves `steps/<key>.json` (its result and wall time) under the output folder, written only
after the step's own outputs are complete, so rerunning `kdcache demo` reuses what is done and redoes the
rest (precompute and training are themselves resumable).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kdcache.console import log
from kdcache.errors import writing_to
from kdcache.atomic import write_text
from kdcache.demo.plan import STUDENT_VARIANTS, DemoPlan


@dataclass
class Step:
    key: str
    title: str
    command: str  # the CLI command that does the same thing
    run: Callable[[], Any]  # returns a JSON-able summary
    share: float  # rough share of the demo's time, for the ETA


def write_json(path: Path, payload: Any) -> None:
    """Atomic JSON write: a killed demo never leaves a half-written marker or report."""
    write_text(path, json.dumps(payload, indent=2, default=str))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def to_toml(config: dict[str, Any]) -> str:
    """A `kdcache train --config` file: top-level keys, then tables, then `[[variant]]` arrays."""
    lines = [f"{key} = {_toml_value(v)}" for key, v in config.items() if not isinstance(v, (dict, list)) or
             (isinstance(v, list) and not (v and isinstance(v[0], dict)))]
    for key, value in config.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"] + [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()]
    for key, value in config.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            for table in value:
                lines += ["", f"[[{key}]]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


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
    def _precompute_step(self, key: str, title: str, teacher: str, splits: list[str], store: Path, share: float) -> Step:
        height, width = self.plan.resolution
        options = {"resolution": (height, width), "batch_size": 32, "shard_size": 64,
                   "split_options": self.plan.split_options}
        from kdcache.precompute import default_workers

        # Same default as the CLI: decoding/rendering in worker processes beside the teacher.
        options["workers"] = default_workers() if self.workers is None else self.workers
        argv = ["kdcache", "precompute", "--teacher", teacher]
        for split in splits:
            argv += ["--split", split]
        argv += ["--out", str(store), "--resolution", f"{height}x{width}", "--batch-size", "32", "--shard-size", "64",
                 "--split-option", f"size={height}x{width}"]

        def run() -> dict:
            from kdcache.precompute import precompute

            precompute(teacher, splits, str(store), **options)
            return {"store": str(store)}

        return Step(key, title, shlex.join(argv), run, share)

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

    def _train_step(self, key: str, title: str, config: dict, share: float) -> Step:
        path = self.out / "configs" / f"{key}.toml"

        def run() -> dict:
            from kdcache.train import train

            write_text(path, to_toml(config))
            resume = (Path(config["out"]) / "config.json").exists() or any(Path(config["out"]).glob("*/config.json"))
            results = train({**config, "resume": resume} if resume else config)
            return {"runs": [str(getattr(r, "run_dir", r)) for r in results]}

        return Step(key, title, shlex.join(["kdcache", "train", "--config", str(path)]), run, share)

    def teacher_config(self) -> dict:
        stage = self.plan.teacher
        variant = {"name": "teacher", "student": stage.preset, "loss": stage.gt_loss}
        return self._train_config(self.gt_store, self.teacher_run, {"labeled": self.plan.teacher_train}, stage,
                                  [variant])

    def variant_entry(self, name: str, preset: str, recipe: str) -> dict:
        """One `[[variant]]` of a train config: student `preset` trained the `recipe` way (a STUDENT_VARIANTS key)."""
        stage = self.plan.student
        spec = STUDENT_VARIANTS[recipe]
        loss = {}
        if "gt" in spec["targets"]:
            loss.update(stage.gt_loss)
        if "kd" in spec["targets"]:
            loss.update(stage.kd_loss)
        variant = {"name": name, "student": preset, "sources": spec["sources"], "loss": loss}
        options = {k: v for k, v in stage.options.get("loss_options", {}).items() if k in loss}
        if options:
            variant["loss_options"] = options
        return variant

    def students_config(self) -> dict:
        stage = self.plan.student
        sources = {"labeled": self.plan.splits["train"], "aux": self.plan.splits["aux"],
                   "aux-far": self.plan.splits["aux-far"]}
        variants = [self.variant_entry(name, stage.preset, name) for name in STUDENT_VARIANTS]
        return self._train_config(self.teacher_store, self.students_run, sources, stage, variants)

    def distil_config(self, preset: str, recipe: str, out: Path, **stage_changes) -> dict:
        """A train config distilling one `preset` from this demo's teacher cache with one recipe (bench/pareto.py).

        `stage_changes` (epochs, batch_size, lr) override the plan's student stage."""
        from dataclasses import replace

        stage = replace(self.plan.student, **stage_changes)
        roles = {"labeled": "train", "aux": "aux", "aux-far": "aux-far"}
        sources = {name: self.plan.splits[roles[name]] for name in STUDENT_VARIANTS[recipe]["sources"]}
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
                                  f"ckpt:{self.teacher_run}", plan.cached_splits, self.teacher_store, 0.12),
        ]

    def steps(self, evaluate_step: Step, report_step: Step) -> list[Step]:
        return self.teacher_steps() + [
            self._train_step("students", f"distil {self.plan.student.preset} five ways in one pass over the cache",
                             self.students_config(), 0.43),
            evaluate_step,
            report_step,
        ]

    def student_runs(self) -> dict[str, Path]:
        return {name: self.students_run / name for name in STUDENT_VARIANTS}


def run_steps(steps: list[Step], out: Path, expected_minutes: float, results: dict[str, dict]) -> None:
    """Run each step unless its marker says it is complete; log progress with an ETA.

    `results[key]` gets each step's summary, wall time, command and title as soon as it is known, so a
    later step (the report) can read what the earlier ones did, whether reused or fresh.
    """
    started = time.perf_counter()
    done_share = 0.0
    for index, step in enumerate(steps, 1):
        marker = out / "steps" / f"{step.key}.json"
        header = f"[bold cyan][{index}/{len(steps)}][/] {step.title}"
        if marker.exists():
            results[step.key] = json.loads(marker.read_text()) | {"title": step.title}
            log(f"{header} [green]complete, reused[/]")
            done_share += step.share
            continue
        log(f"{header}{_eta(started, done_share, expected_minutes)}\n    [dim]$ {step.command}[/]")
        step_start = time.perf_counter()
        with writing_to(out):  # a full disk: rerunning the demo reuses the finished steps and resumes the others
            summary = step.run() or {}
        result = {"summary": summary, "seconds": round(time.perf_counter() - step_start, 1), "command": step.command}
        write_json(marker, result)
        results[step.key] = result | {"title": step.title}
        done_share += step.share


def _eta(started: float, done_share: float, expected_minutes: float) -> str:
    elapsed = time.perf_counter() - started
    if done_share > 0.05 and elapsed > 1:
        remaining = elapsed * (1 - done_share) / done_share
    elif expected_minutes:
        remaining = expected_minutes * 60 * (1 - done_share)
    else:
        return ""
    return f" [dim](elapsed {elapsed:.0f} s, about {remaining / 60:.1f} min left)[/]"

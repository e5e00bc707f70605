"""`kdcache demo`: the two-stage distillation recipe end to end, offline, on the synthetic world.

1. cache images + GT (`--teacher none`), 2. train a big teacher on GT, 3. precompute that teacher once over
labeled + aux + aux-far images, 4. distil one small student every way the experiment lists (its `rows`) in one
pass over the cache, once per seed, 5. evaluate the teacher and every student, 6. write report.md, results.json,
gallery.png and curves.png. Everything lands under the output folder; a rerun reuses every finished step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from kdcache.console import log
from kdcache.demo.findings import check_feature_rows, check_findings, check_targets
from kdcache.demo.plan import DemoPlan, load_plan
from kdcache.demo.report import ROW_ORDER, combine_seeds, render_report, result_row
from kdcache.demo.steps import DemoSteps, Step, run_steps, write_json, write_text
from kdcache.errors import KdcacheError, check_writable
from kdcache.evaluate.eval_config import EvalConfig

__all__ = ["DemoResult", "run_demo", "load_plan"]


@dataclass
class DemoResult:
    out: Path
    report: Path
    results: Path
    rows: list[dict]
    findings: list
    targets: list
    feature_checks: list


def _models(steps: DemoSteps, seed: int = 0) -> dict[str, Path]:
    """Row name -> run folder of one seed (the teacher is trained once)."""
    return {"teacher": steps.teacher_run, **steps.student_runs(seed)}


def _all_models(plan: DemoPlan, steps: DemoSteps) -> list[tuple[str, int, Path]]:
    """(row, seed, run folder) of the teacher and of every student row and seed."""
    found = [("teacher", 0, steps.teacher_run)]
    for seed in plan.seed_list:
        found += [(name, seed, path) for name, path in steps.student_runs(seed).items()]
    return found


def eval_config(plan: DemoPlan, steps: DemoSteps, out: Path) -> EvalConfig:
    """`kdcache eval` of the teacher and every student row and seed on the test split, written to eval.json."""
    models = [str(path) for _, _, path in _all_models(plan, steps)]
    return EvalConfig(models, plan.splits["test"], [plan.eval_protocol], split_options=plan.split_options,
                      json_out=str(out / "eval.json"))


def _evaluate_step(plan: DemoPlan, steps: DemoSteps, out: Path) -> Step:
    models = _all_models(plan, steps)
    config = eval_config(plan, steps, out)

    def run(fresh: bool) -> dict:
        from kdcache.evaluate import evaluate, load_predictor, measure_efficiency

        # Accuracy for every model; efficiency once per architecture (the students share one), so
        # the students' latencies are one measurement rather than many noisy ones; eval.json gets both.
        rows = evaluate(replace(config, efficiency=False, json_out=None))
        size = plan.resolution
        teacher_eff = measure_efficiency(load_predictor(str(steps.teacher_run)), size, throughput_batch=8)
        student_eff = measure_efficiency(load_predictor(str(steps.student_runs()["gt-only"])), size,
                                         throughput_batch=8)
        for (name, _, _), row in zip(models, rows):
            row["efficiency"] = teacher_eff if name == "teacher" else student_eff
        named = [result_row(name, row) | {"seed": seed, "eval": row} for (name, seed, _), row in zip(models, rows)]
        write_json(out / "eval.json", {"rows": rows})
        return {"rows": named}

    students = f"{len(plan.rows)} student rows" + (f" x {plan.seeds} seeds" if plan.seeds > 1 else "")
    return Step("eval", f"evaluate the teacher and {students} on {plan.splits['test']}", config.command(), run, 0.08,
                config=config)


def _report_step(plan: DemoPlan, steps: DemoSteps, out: Path, results: dict) -> Step:
    def run(fresh: bool) -> dict:
        from kdcache.data import open_split
        from kdcache.demo.gallery import save_gallery, save_validation_curves
        from kdcache.evaluate.predictors import load_predictor
        from kdcache.train.curves import read_metrics

        by_name: dict[str, list[dict]] = {}
        for row in results["eval"]["summary"]["rows"]:
            by_name.setdefault(row["name"], []).append({k: v for k, v in row.items() if k != "eval"})
        rows = [combine_seeds(sorted(runs, key=lambda run: run["seed"])) for runs in by_name.values()]
        rows.sort(key=lambda row: ROW_ORDER.index(row["name"]))
        findings = check_findings(rows)
        feature_checks = check_feature_rows(rows)
        targets = check_targets(rows, plan.targets, plan.recommended)
        models = _models(steps)  # pictures: seed 0
        students = [row for row in rows if row["name"].startswith("kd-")]
        best = min(students, key=lambda row: row["abs_rel"])["name"]
        shown = {"teacher": "teacher", "gt-only": "baseline (gt-only)", best: f"best student ({best})"}
        predictors = {label: load_predictor(str(models[name])) for name, label in shown.items()}
        test = open_split(plan.splits["test"], **plan.split_options)
        count = min(plan.gallery_images, len(test))
        save_gallery([test[i * len(test) // count] for i in range(count)], predictors, out / "gallery.png")
        curves = {name: [(r["step"], r["abs_rel"]) for r in read_metrics(path / "metrics.jsonl")
                         if r.get("kind") == "val"] for name, path in models.items()}
        save_validation_curves(curves, out / "curves.png")
        commands = [(results[key]["title"], results[key]["command"]) for key in results if key != "report"]
        wall = sum(results[key]["seconds"] for key in results if key != "report")
        description = results["eval"]["summary"]["rows"][0]["eval"]["protocol_description"]
        payload = {
            "scale": plan.scale,
            "rows": rows,
            "seeds": plan.seeds,
            "findings": [f.to_dict() for f in findings],
            "feature_checks": [f.to_dict() for f in feature_checks],
            "targets": [t.to_dict() for t in targets],
            "commands": [{"step": title, "command": command} for title, command in commands],
            "wall_time_s": round(wall, 1),
            "step_seconds": {key: results[key]["seconds"] for key in results if key != "report"},
            "config": str(plan.source),
        }
        write_json(out / "results.json", payload)
        write_text(out / "report.md", render_report(plan, rows, findings, targets, commands, wall, description,
                                                    feature_checks))
        return {"report": str(out / "report.md")}

    return Step("report", "write report.md, results.json, gallery.png and curves.png", "kdcache demo  # this step",
                run, 0.02, {"targets": plan.targets, "recommended": plan.recommended,
                                 "gallery_images": plan.gallery_images})


def run_demo(scale: str = "tiny", out: str | Path = "kdcache-demo", config: str | Path | None = None,
             workers: int | None = None, seeds: int | None = None) -> DemoResult:
    """Run (or finish) the demo at `scale` into `out`; returns where the report and results are.
    `seeds` (default: the experiment's own `seeds`) trains every student row with seeds 0 .. seeds-1."""
    plan = load_plan(scale, config, seeds)
    out = Path(out)
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"[bold]kdcache demo[/], scale [cyan]{plan.scale}[/]: {plan.summary} -> {out} (its config expects about "
        f"{plan.expected_minutes:g} min; the ETAs below are measured on this machine)")
    steps = DemoSteps(plan, out, workers=workers)
    results: dict[str, dict] = {}
    all_steps = steps.steps(_evaluate_step(plan, steps, out), _report_step(plan, steps, out, results))
    run_steps(all_steps, out, results)
    payload = _read_results(out)
    log(f"[green]done:[/] {out / 'report.md'}")
    return DemoResult(out, out / "report.md", out / "results.json", payload["rows"], payload["findings"],
                      payload.get("targets", []), payload.get("feature_checks", []))


def _read_results(out: Path) -> dict:
    import json

    path = out / "results.json"
    if not path.exists():
        raise KdcacheError(f"{path} was not written: rerun `kdcache demo --out {out}`")
    return json.loads(path.read_text())

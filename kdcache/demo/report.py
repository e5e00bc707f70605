"""`results.json` and `report.md`: the demo's table, its findings as checks, pictures and the commands to rerun."""

from __future__ import annotations

import platform
import statistics
from pathlib import Path

import torch

from kdcache import __version__
from kdcache.demo.findings import MARGIN, Finding, unchecked_findings
from kdcache.timing import busiest
from kdcache.train.modes import MODES

ROW_ORDER = ["teacher", *MODES]
ROW_DESCRIPTIONS = {"teacher": "big model trained on labeled GT (stage 1 of the two-stage recipe)",
                    **{name: row.description for name, row in MODES.items()}}
MEANED = ("abs_rel", "rmse", "d1", "sq_rel", "rmse_log", "silog")  # accuracy metrics: mean over seeds


def result_row(name: str, eval_row: dict) -> dict:
    """The flat row of results.json from one `kdcache.evaluate.evaluate` row."""
    metrics, efficiency = eval_row["metrics"], eval_row.get("efficiency") or {}
    latency = efficiency.get("latency_ms")
    return {
        "name": name,
        "abs_rel": metrics["abs_rel"],
        "rmse": metrics["rmse"],
        "d1": metrics["d1"],
        "sq_rel": metrics["sq_rel"],
        "rmse_log": metrics["rmse_log"],
        "silog": metrics["silog"],
        "params": efficiency.get("params"),
        "gflops": efficiency.get("gflops"),
        "latency_ms": latency,
        "fps": 1000.0 / latency if latency else None,
        "machine": efficiency.get("machine"),  # the load the latency was timed at
        "protocol": eval_row["protocol"],
        "output_space": eval_row["output_space"],
        "images": eval_row["images"],
    }


def combine_seeds(runs: list[dict]) -> dict:
    """One row from the same row's result rows of several seeds (in seed order): accuracy metrics are the
    mean over seeds, `abs_rel_std` their sample standard deviation (0 for one seed), `runs` each seed's numbers."""
    row = dict(runs[0])
    for key in MEANED:
        row[key] = statistics.fmean(run[key] for run in runs)
    values = [run["abs_rel"] for run in runs]
    row["abs_rel_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    row["seeds"] = len(runs)
    row["runs"] = [{"seed": run.get("seed", i), **{key: run[key] for key in MEANED}} for i, run in enumerate(runs)]
    return row


def machine_description() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return f"{platform.machine()} {platform.system()}, {device}, torch {torch.__version__}"


def timed_at(rows: list[dict]) -> str:
    """The context of the table's latency and FPS: the busiest load they were timed at."""
    load = busiest(row.get("machine") for row in rows)
    return "" if load is None else (f"Latency and FPS timed at {load.describe()}"
                                    + (": not comparable with an idle machine's." if load.busy else "."))


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _abs_rel(row: dict, seeded: bool) -> str:
    if not seeded:
        return f"{row['abs_rel']:.4f}"
    return f"{row['abs_rel']:.4f} ± {row['abs_rel_std']:.4f}" if row.get("seeds", 1) > 1 else f"{row['abs_rel']:.4f}"


def results_table(rows: list[dict]) -> str:
    """The main table; with several seeds AbsRel is mean ± spread, RMSE and δ1 are means."""
    seeded = any(row.get("seeds", 1) > 1 for row in rows)
    header = "AbsRel (mean ± sd)" if seeded else "AbsRel"
    lines = [
        f"| model | {header} | RMSE (m) | δ1 | params | GFLOPs | CPU latency (ms) | FPS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        params = None if row["params"] is None else row["params"] / 1e6
        lines.append(
            f"| {row['name']} | {_abs_rel(row, seeded)} | {row['rmse']:.3f} | {row['d1']:.3f} "
            f"| {_fmt(params, '.2f')} M | {_fmt(row['gflops'], '.2f')} | {_fmt(row['latency_ms'], '.1f')} "
            f"| {_fmt(row['fps'], '.0f')} |"
        )
    return "\n".join(lines)


def seeds_table(rows: list[dict]) -> str:
    """AbsRel of every student row per seed (empty for a one-seed demo)."""
    students = [row for row in rows if row.get("seeds", 1) > 1]
    if not students:
        return ""
    seeds = [run["seed"] for run in students[0]["runs"]]
    lines = ["| student | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean | sd |",
             "| --- |" + " ---: |" * (len(seeds) + 2)]
    for row in students:
        values = " | ".join(f"{run['abs_rel']:.4f}" for run in row["runs"])
        lines.append(f"| {row['name']} | {values} | {row['abs_rel']:.4f} | {row['abs_rel_std']:.4f} |")
    return "\n".join(lines)


def noise_rule(rows: list[dict]) -> str:
    seeds = max(row.get("seeds", 1) for row in rows)
    if seeds > 1:
        return (f"Every student row was trained with {seeds} seeds (initialisation, batch order, augmentation) from "
                "the same teacher cache; ± is the sample standard deviation over seeds. A finding counts as "
                "reproduced only when the gap between the means exceeds the two rows' spreads added up.")
    return (f"One seed, so no spread was measured: a finding counts as reproduced only when the winner's AbsRel "
            f"is at least {MARGIN:.0%} lower (relative). Use `--seeds 3` to judge the gaps against seed noise.")


def findings_section(findings: list[Finding], yes: str = "reproduced", no: str = "**not reproduced at this scale**") -> str:
    return "\n".join(f"- {f.claim}: {yes if f.holds else no} ({f.evidence})." for f in findings)


def targets_section(plan, targets: list[Finding]) -> str:
    """The scale's numeric targets, when its config sets any."""
    if not targets:
        return ""
    met = sum(t.holds for t in targets)
    return f"""
## Targets of this scale ({met} of {len(targets)} met)

Set in `[targets]` of `{plan.source.name}`, read before the run started; checked on the test split.

{findings_section(targets, "met", "**missed**")}
"""


def feature_section(checks: list[Finding]) -> str:
    if not checks:
        return ""
    return f"""
## Distillation of the cached teacher features

{findings_section(checks, "helps", "**does not help beyond the seed spread**")}
"""


def render_report(plan, rows: list[dict], findings: list[Finding], targets: list[Finding], commands: list[tuple[str, str]],
                  wall_seconds: float, protocol_description: str, feature_checks: list[Finding] = ()) -> str:
    names = {row["name"] for row in rows}
    variants = "\n".join(f"- `{name}`: {text}" for name, text in ROW_DESCRIPTIONS.items() if name in names)
    per_seed = seeds_table(rows)
    per_seed = f"\nAbsRel of each seed:\n\n{per_seed}\n" if per_seed else ""
    steps = "\n".join(f"{i}. {title}\n\n   ```bash\n   {command}\n   ```" for i, (title, command) in
                      enumerate(commands, 1))
    held = sum(f.holds for f in findings)
    unchecked = unchecked_findings(rows)
    unchecked = ("\n\nNot checked at this scale (it does not train their rows; see the smaller scales): " +
                 "; ".join(unchecked) + ".") if unchecked else ""
    return f"""# kdcache demo report — scale `{plan.scale}`

{plan.description.strip()}

Machine: {machine_description()}. Wall time: {wall_seconds / 60:.1f} min. kdcache {__version__}.
{timed_at(rows)}
Test split: `{plan.splits['test']}`, protocol `{rows[0]['protocol']}` ({protocol_description}).
Resolution: {plan.resolution[0]}x{plan.resolution[1]} everywhere (the synthetic world is rendered at this size for
training, auxiliary and test images, so the cache stores exact ground truth and nothing is resized).

## Results

{results_table(rows)}

{variants}
{per_seed}
## Findings of Hu et al., checked ({held} of {len(findings)} hold here)

{findings_section(findings)}{unchecked}

{noise_rule(rows)} `--scale full` is the real experiment (see docs/results.md).
{feature_section(list(feature_checks))}{targets_section(plan, targets)}
## Pictures

![gallery](gallery.png)

*Columns: RGB, ground truth, teacher, the GT-only baseline, the best KD student; one colour range per row (its
bar, in metres, on the right). Colour map inferno: bright = near, dark = far; black in the ground truth = no
measurement.*

![validation curves](curves.png)

Each run's own curves (loss terms, learning rate, validation AbsRel): `runs/*/curves.png`, `runs/students*/*/curves.png`
(`runs/students` is seed 0, `runs/students-seed<N>` seed N).

## Rerun each step

{steps}

The experiment itself is `{plan.source}`.
"""

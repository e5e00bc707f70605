"""`results.json` and `report.md`: the demo's table, its findings as checks, pictures and the commands to rerun."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from kdcache import __version__
from kdcache.demo.findings import Finding

ROW_ORDER = ["teacher", "gt-only", "kd-labeled", "kd-labeled-aux", "kd-aux-only", "kd-labeled-aux-far"]
ROW_DESCRIPTIONS = {
    "teacher": "big model trained on labeled GT (stage 1 of the two-stage recipe)",
    "gt-only": "student, GT loss only (the baseline, no teacher)",
    "kd-labeled": "student, GT + KD on labeled images",
    "kd-labeled-aux": "student, GT on labeled + KD on labeled and auxiliary images",
    "kd-aux-only": "student, KD on auxiliary images only (no labels at all)",
    "kd-labeled-aux-far": "student, GT + KD with auxiliary images of a 3-4x larger scene scale",
}


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
        "protocol": eval_row["protocol"],
        "output_space": eval_row["output_space"],
        "images": eval_row["images"],
    }


def machine_description() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    return f"{platform.machine()} {platform.system()}, {device}, torch {torch.__version__}"


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def results_table(rows: list[dict]) -> str:
    lines = [
        "| model | AbsRel | RMSE (m) | δ1 | params | GFLOPs | CPU latency (ms) | FPS |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        params = None if row["params"] is None else row["params"] / 1e6
        lines.append(
            f"| {row['name']} | {row['abs_rel']:.4f} | {row['rmse']:.3f} | {row['d1']:.3f} | {_fmt(params, '.2f')} M "
            f"| {_fmt(row['gflops'], '.2f')} | {_fmt(row['latency_ms'], '.1f')} | {_fmt(row['fps'], '.0f')} |"
        )
    return "\n".join(lines)


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


def render_report(plan, rows: list[dict], findings: list[Finding], targets: list[Finding], commands: list[tuple[str, str]],
                  wall_seconds: float, protocol_description: str) -> str:
    variants = "\n".join(f"- `{name}`: {text}" for name, text in ROW_DESCRIPTIONS.items())
    steps = "\n".join(f"{i}. {title}\n\n   ```bash\n   {command}\n   ```" for i, (title, command) in
                      enumerate(commands, 1))
    held = sum(f.holds for f in findings)
    return f"""# kdcache demo report — scale `{plan.scale}`

{plan.description.strip()}

Machine: {machine_description()}. Wall time: {wall_seconds / 60:.1f} min. kdcache {__version__}.
Test split: `{plan.splits['test']}`, protocol `{rows[0]['protocol']}` ({protocol_description}).
Resolution: {plan.resolution[0]}x{plan.resolution[1]} everywhere (the synthetic world is rendered at this size for
training, auxiliary and test images, so the cache stores exact ground truth and nothing is resized).

## Results

{results_table(rows)}

{variants}

## Findings of Hu et al., checked ({held} of {len(findings)} hold here)

{findings_section(findings)}

A finding counts as reproduced only when the winner's AbsRel is at least 1 % lower (relative): smaller
differences are within the run-to-run noise of minutes of CPU training. `--scale full` is the real
experiment (see docs/results.md).
{targets_section(plan, targets)}
## Pictures

![gallery](gallery.png)

*Columns: RGB, ground truth, teacher, the GT-only baseline, the best KD student; one colour range per row.*

![validation curves](curves.png)

Each run's own curves (loss terms, learning rate, validation AbsRel): `runs/*/curves.png`, `runs/students/*/curves.png`.

## Rerun each step

{steps}

The experiment itself is `{plan.source}`.
"""

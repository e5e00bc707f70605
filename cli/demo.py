"""`kdcache demo`: the README's main command."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def demo_command(
    scale: str = typer.Option("tiny", "--scale", help="micro (seconds, for tests) | tiny (default, ~5 min on a 2-core CPU) | small (~45 min) | full (~2 h)."),
    out: Path = typer.Option(Path("kdcache-demo"), "--out", help="Folder for every intermediate and the report."),
    config: Optional[Path] = typer.Option(None, "--config", help="A demo TOML instead of configs/demo-<scale>.toml."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data loader workers for precompute and training."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Train every student row with N seeds from the same teacher cache; the report shows mean ± spread and judges findings against it (default: the experiment's own, 1 unless its TOML sets `seeds`)."),
) -> None:
    """Run the whole two-stage distillation recipe offline on the synthetic world and write a report."""
    from kdcache.demo import run_demo
    from kdcache.demo.report import results_table

    result = run_demo(scale=scale, out=out, config=config, workers=workers, seeds=seeds)
    typer.echo(results_table(result.rows))
    for finding in result.findings + result.feature_checks:
        typer.echo(f"{'yes' if finding['holds'] else 'NO '}  {finding['claim']} ({finding['evidence']})")
    for target in result.targets:
        typer.echo(f"{'met' if target['holds'] else 'MISSED'}  target: {target['claim']} ({target['evidence']})")
    typer.echo(f"report: {result.report}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)

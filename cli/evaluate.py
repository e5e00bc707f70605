"""`kdcache eval`: students and teachers side by side under a named protocol, with efficiency figures."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kdcache.cli.config_options import config_file_option, option, overrides, print_config_option, resolve
from kdcache.evaluate.eval_config import EvalConfig as C
from kdcache.sizes import parse_hw


def eval_command(
    ctx: typer.Context,
    split: Optional[str] = option(C, "split", "-s"),
    models: List[str] = option(C, "models", "-m"),
    protocols: List[str] = option(C, "protocols", "-p"),
    flip_tta: bool = option(C, "flip_tta"),
    device: str = option(C, "device"),
    precision: str = option(C, "precision"),
    input_size: Optional[str] = option(C, "input_size"),
    crop: str = option(C, "crop"),
    max_depth: Optional[float] = option(C, "max_depth"),
    efficiency: bool = option(C, "efficiency"),
    throughput_batch: int = option(C, "throughput_batch"),
    json_out: Optional[str] = option(C, "json_out"),
    markdown_out: Optional[str] = option(C, "markdown_out"),
    data_root: Optional[str] = option(C, "data_root"),
    split_options: List[str] = option(C, "split_options"),
    gt: Optional[str] = typer.Option(None, "--gt", help="NYU ground truth: raw (default, the metric protocol's) or "
                                                         "filled; short for --split-option gt=..."),
    size: Optional[str] = typer.Option(None, "--size", help="HxW of synthetic splits (synth-test renders at any "
                                                             "size); short for --split-option size=HxW."),
    strict: bool = option(C, "strict"),
    list_protocols: bool = typer.Option(False, "--list-protocols", help="Describe the protocols and exit."),
    config: Optional[Path] = config_file_option(),
    print_config: bool = print_config_option(),
) -> None:
    """Score models on a labeled split with the literature's exact protocols."""
    from kdcache.evaluate import evaluate
    from kdcache.evaluate.results import print_results

    if list_protocols:
        _print_protocols()
        return
    options = overrides(ctx, C)
    shorthands = {**({"gt": gt} if gt else {}), **({"size": parse_hw(size, "--size")} if size else {})}
    if shorthands:
        options["split_options"] = {**options.get("split_options", {}), **shorthands}
    print_results(evaluate(resolve(C, config, options, print_config)))


def _print_protocols() -> None:
    from rich.table import Table
    from rich.text import Text

    from kdcache.evaluate.protocols import create_protocol, list_protocols

    table = Table(title="evaluation protocols")
    table.add_column("Name")
    table.add_column("Scores models in")
    table.add_column("Recipe")
    for name in list_protocols():
        protocol = create_protocol(name)
        table.add_row(name, "/".join(protocol.model_spaces), Text(protocol.description))  # Text: "[min, max]" is no markup
    from kdcache.console import stdout_console

    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)

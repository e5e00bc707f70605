"""`kdcache eval`: students and teachers side by side under a named protocol, with efficiency figures."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kdcache.errors import KdcacheError, check_writable
from kdcache.sizes import parse_hw


def eval_command(
    split: Optional[str] = typer.Option(None, "--split", "-s", help="Labeled split, e.g. nyu-test, kitti-eigen-test, synth-test[:100]."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="Student run/checkpoint dir or teacher name (dpt-large, hf:PATH); repeat to compare."),
    protocol: Optional[List[str]] = typer.Option(None, "--protocol", "-p", help="metric (default; BTS), metric-zoedepth, hu, aligned-disparity, aligned-depth (see --list-protocols); repeatable."),
    flip_tta: bool = typer.Option(False, "--flip-tta", help="Average with the horizontally flipped prediction, as ZoeDepth's reported numbers do (BTS and Hu et al. do not)."),
    device: str = typer.Option("auto", help="auto (the GPU if there is one), cpu, cuda, cuda:1, mps."),
    precision: str = typer.Option("fp32", help="Teacher precision: fp32, fp16, bf16."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW the models are fed (students default to their training size)."),
    crop: str = typer.Option("auto", help="auto (Eigen for NYU, Garg for KITTI), none, eigen, garg, eigen-kitti."),
    max_depth: Optional[float] = typer.Option(None, "--max-depth", help="Override the dataset's depth cap in metres."),
    efficiency: bool = typer.Option(True, "--efficiency/--no-efficiency", help="Measure params, GFLOPs, latency, throughput, memory."),
    throughput_batch: int = typer.Option(32, "--throughput-batch", help="Batch size for throughput (halved if memory is short)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Write a markdown table here."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root (default $KDCACHE_DATA or ./data)."),
    gt: Optional[str] = typer.Option(None, "--gt", help="NYU ground truth: raw (default, the metric protocol's) or filled."),
    size: Optional[str] = typer.Option(None, "--size", help="HxW of synthetic splits (synth-test renders at any size)."),
    strict: bool = typer.Option(False, "--strict", help="Stop on an unreadable image instead of skipping it."),
    list_protocols: bool = typer.Option(False, "--list-protocols", help="Describe the protocols and exit."),
) -> None:
    """Score models on a labeled split with the literature's exact protocols."""
    from kdcache.evaluate import evaluate
    from kdcache.atomic import write_text
    from kdcache.evaluate.results import print_results, to_json, to_markdown

    if list_protocols:
        _print_protocols()
        return
    if not split or not model:
        raise KdcacheError("kdcache eval needs --split NAME and at least one --model RUN_DIR_OR_TEACHER")
    for option, path in (("--json", json_out), ("--markdown", markdown_out)):
        if path:
            check_writable(path, option, folder=False)  # before the evaluation, not after it
    rows = evaluate(
        model, split, protocol=list(protocol) if protocol else None, flip_tta=flip_tta, device=device,
        precision=precision, input_size=parse_hw(input_size, "--input-size"), crop=crop, max_depth=max_depth,
        efficiency=efficiency, throughput_batch=throughput_batch, root=data_root, strict=strict,
        split_options={**({"gt": gt} if gt else {}), **({"size": parse_hw(size, "--size")} if size else {})},
    )
    print_results(rows)
    if json_out:
        write_text(json_out, to_json(rows))
    if markdown_out:
        write_text(markdown_out, to_markdown(rows))


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

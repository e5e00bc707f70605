"""`kdcache export`: a student as a verified ONNX file (optionally int8), with ONNX vs PyTorch latency."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdcache.export_speed import SpeedSettings


def export_command(
    model: str = typer.Option(..., "--model", "-m", help="Student run dir, checkpoint dir or .safetensors file."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx path (int8 goes to NAME.int8.onnx beside it)."),
    int8: bool = typer.Option(False, "--int8", help="Also write a dynamic-int8 model and report its accuracy change."),
    split: Optional[str] = typer.Option(None, "--split", help="Split for sample inputs and the int8 accuracy check."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW of the sample inputs (default: training size)."),
    exporter: str = typer.Option("auto", help="auto, dynamo, torchscript, torchscript-static."),
    threads: int = typer.Option(SpeedSettings.threads, "--threads", help="onnxruntime threads for the latency / FPS figure."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the export report as JSON here."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root (default $KDCACHE_DATA or ./data)."),
) -> None:
    """Export a student to ONNX, check it against PyTorch with onnxruntime, report latency."""
    from kdcache.errors import check_writable
    from kdcache.export import export_onnx
    from kdcache.export_report import print_export_report
    from kdcache.sizes import parse_hw

    if json_out:
        check_writable(json_out, "--json", folder=False)

    report = export_onnx(model, onnx, int8=int8, exporter=exporter, input_size=parse_hw(input_size, "--input-size"),
                         split=split, root=data_root, threads=threads)
    print_export_report(report)
    if json_out:
        import json

        from kdcache.atomic import write_text

        write_text(json_out, json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)

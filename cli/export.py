"""`kdcache export`: a student as a verified ONNX file (optionally int8), with its onnxruntime latency and FPS."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

_DELTA_KEYS = ("abs_rel", "rmse", "d1")


def export_command(
    model: str = typer.Option(..., "--model", "-m", help="Student run dir, checkpoint dir or .safetensors file."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx path (int8 goes to NAME.int8.onnx beside it)."),
    int8: bool = typer.Option(False, "--int8", help="Also write a dynamic-int8 model and report its accuracy change."),
    split: Optional[str] = typer.Option(None, "--split", help="Split for sample inputs and the int8 accuracy check."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW of the sample inputs (default: training size)."),
    exporter: str = typer.Option("auto", help="auto, dynamo, torchscript, torchscript-static."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="onnxruntime threads for the latency / FPS figure (default: the speed protocol's 2)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the export report as JSON here."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root (default $KDCACHE_DATA or ./data)."),
) -> None:
    """Export a student to ONNX, check it against PyTorch with onnxruntime, report latency and FPS."""
    from kdcache.console import stdout_console
    from kdcache.errors import check_writable
    from kdcache.export import export_onnx
    from kdcache.sizes import parse_hw
    from kdcache.timing import MachineLoad, warn_if_busy

    if json_out:
        check_writable(json_out, "--json", folder=False)
    report = export_onnx(model, onnx, int8=int8, exporter=exporter, input_size=parse_hw(input_size, "--input-size"),
                         split=split, root=data_root, **({"threads": threads} if threads else {}))
    stdout_console().print(export_table(report))
    warn_if_busy(MachineLoad.from_dict(report["machine"]))
    if json_out:
        import json

        from kdcache.atomic import write_text

        write_text(json_out, json.dumps(report, indent=2))


def export_table(report: dict) -> Table:
    """The export report as a two-column table."""
    from kdcache.export import PARITY_TOLERANCE
    from kdcache.timing import MachineLoad

    table = Table(title="kdcache export", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    axes = ", ".join(report["dynamic_axes"]) or "none (fixed input size)"
    rows = [
        ("ONNX file", f"{report['onnx']} ({report['size_mb']:.1f} MB)"),
        ("exporter / opset", f"{report['exporter']} / opset {report['opset']} (onnxruntime CPU and mobile >= 1.14)"),
        ("dynamic axes", axes),
        ("output", f"{report['output_space']} at the input size"),
        ("parity vs PyTorch", f"max rel. error {report['parity_rel_error']:.2e} (limit {PARITY_TOLERANCE:g}) ✓"),
        ("latency, batch 1 @ {}x{}".format(*report["input_size"]),
         f"onnxruntime ({report['onnx_threads']} threads) {report['onnx_latency_ms']:.1f} ms = "
         f"{report['onnx_fps']:.1f} FPS (median of {report['onnx_repeats']}); PyTorch ({report['torch_threads']} "
         f"threads) {report['torch_latency_ms']:.1f} ms"),
        ("timed at", MachineLoad.from_dict(report["machine"]).describe()),
    ]
    int8 = report.get("int8")
    if int8:
        rows += [
            ("int8 file", f"{int8['onnx']} ({int8['size_mb']:.1f} MB)"),
            ("int8 latency", f"onnxruntime {int8['onnx_latency_ms']:.1f} ms = {int8['onnx_fps']:.1f} FPS"),
            ("int8 accuracy", _accuracy_cell(int8["accuracy"])),
        ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _accuracy_cell(accuracy: dict) -> str:
    if "delta" in accuracy:
        deltas = ", ".join(f"{key} {accuracy['fp32'][key]:.4f} -> {accuracy['int8'][key]:.4f} "
                           f"({accuracy['delta'][key]:+.4f})" for key in _DELTA_KEYS)
        return f"{deltas} on {accuracy['on']} ({accuracy['protocol']})"
    return (f"mean rel. diff vs fp32 {accuracy['mean_rel_diff_vs_fp32']:.2e}, "
            f"max {accuracy['max_rel_diff_vs_fp32']:.2e} on {accuracy['on']}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)

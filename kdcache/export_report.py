"""The `kdcache export` report as a rich table on stdout."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from kdcache.export import PARITY_TOLERANCE

_DELTA_KEYS = ("abs_rel", "rmse", "d1")


def _accuracy_cell(accuracy: dict) -> str:
    if "delta" in accuracy:
        deltas = ", ".join(f"{key} {accuracy['fp32'][key]:.4f} -> {accuracy['int8'][key]:.4f} "
                           f"({accuracy['delta'][key]:+.4f})" for key in _DELTA_KEYS)
        return f"{deltas} on {accuracy['on']} ({accuracy['protocol']})"
    return (f"mean rel. diff vs fp32 {accuracy['mean_rel_diff_vs_fp32']:.2e}, "
            f"max {accuracy['max_rel_diff_vs_fp32']:.2e} on {accuracy['on']}")


def export_table(report: dict) -> Table:
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


def print_export_report(report: dict, console: Console | None = None) -> None:
    from kdcache.console import stdout_console

    (console or stdout_console()).print(export_table(report))

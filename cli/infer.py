"""`kdcache infer`: depth maps (PNG, 16-bit PNG, .npy) for images and folders, depth videos for videos."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kdcache.depth_colors import DEPTH_CMAP
from kdcache.timing import MachineLoad, warn_if_busy


def infer_command(
    inputs: List[Path] = typer.Argument(..., help="Image files, folders (searched recursively) or videos (.mp4, .gif)."),
    model: str = typer.Option(..., "--model", "-m", help="Student run/checkpoint, exported .onnx, or teacher name."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    fmt: Optional[List[str]] = typer.Option(None, "--format", "-f", help="color, side, png16 (mm), npy (metres); repeatable. Default: color + side."),
    device: str = typer.Option("auto", help="auto (the GPU if there is one), cpu, cuda, cuda:1, mps."),
    precision: str = typer.Option("fp32", help="Teacher precision: fp32, fp16, bf16."),
    input_size: Optional[str] = typer.Option(None, "--input-size", help="HxW the model is fed (students default to their training size)."),
    flip_tta: bool = typer.Option(False, "--flip-tta", help="Average with the horizontally flipped prediction."),
    cmap: str = typer.Option(DEPTH_CMAP, help="Matplotlib colormap for the coloured maps (last colour = near)."),
) -> None:
    """Predict depth for images, folders and videos."""
    from rich.table import Table

    from kdcache.console import stdout_console
    from kdcache.infer import infer
    from kdcache.sizes import parse_hw

    summary = infer(model, inputs, out, formats=tuple(fmt) if fmt else ("color", "side"), device=device,
                    precision=precision, input_size=parse_hw(input_size, "--input-size"), flip_tta=flip_tta, cmap=cmap)
    load = MachineLoad.from_dict(summary["machine"])
    table = Table(title=f"kdcache infer — {summary['model']} ({summary['output_space']})",
                  caption=f"speeds timed at {load.describe()}", caption_justify="left")
    for column in ("Input", "Items", "Output", "Speed"):
        table.add_column(column, justify="right" if column in ("Items", "Speed") else "left")
    if summary["images"] or summary["skipped"]:
        speed = f"{summary['images_per_s']:.1f} img/s (model)" if summary["images"] else "–"
        skipped = f" ({len(summary['skipped'])} unreadable skipped)" if summary["skipped"] else ""
        table.add_row("images", f"{summary['images']}{skipped}", summary["out"], speed)
    for video in summary["videos"]:
        table.add_row(video["input"], f"{video['frames']} frames", video["output"],
                      f"{video['model_fps']:.1f} fps model, {video['pipeline_fps']:.1f} fps end-to-end "
                      f"(source {video['source_fps']:.0f} fps)")
    stdout_console().print(table)
    warn_if_busy(load)


def register(app: typer.Typer) -> None:
    app.command("infer")(infer_command)

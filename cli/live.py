"""`kdcache live`: a local web page showing a student's depth beside the camera, a video or an image, live."""

from __future__ import annotations

from typing import Optional

import typer

from kdcache.depth_colors import DEPTH_CMAP
from kdcache.live import DEFAULT_PORT


def live_command(
    model: str = typer.Option(..., "--model", "-m", help="Student run dir / checkpoint, or an exported .onnx file."),
    teacher: Optional[str] = typer.Option(None, "--teacher", "-t",
                                          help="Show a teacher beside the student: a registered name (dpt-large, "
                                               "hf:PATH) or ckpt:RUN."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port on this machine (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (browsers allow the camera only "
                                                          "on localhost or https)."),
    size: Optional[str] = typer.Option(None, "--size", help="Model input HxW (default: the model's own, else the "
                                                            "frame's)."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if there is one), cpu, cuda, cuda:N (PyTorch models)."),
    cmap: str = typer.Option(DEPTH_CMAP, "--cmap", help="Matplotlib colormap for depth (last colour = near)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Inference threads (default: every core "
                                                                         "but one, which the browser needs)."),
    runtime: str = typer.Option("auto", "--runtime", help="auto (a run dir is exported to ONNX, cached, and runs on "
                                                          "onnxruntime if faster), onnxruntime or torch."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
) -> None:
    """Serve a live depth page: webcam, video or image in; RGB and colour-mapped depth side by side, FPS and latency."""
    from kdcache.live import run_live
    from kdcache.sizes import parse_hw

    run_live(model, teacher, open_browser=open_browser, host=host, port=port, device=device,
             input_size=parse_hw(size, "--size"), cmap=cmap, threads=threads, runtime=runtime)


def register(app: typer.Typer) -> None:
    app.command("live")(live_command)

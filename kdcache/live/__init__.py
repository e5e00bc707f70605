"""`kdcache live`: a local web page that shows a student's depth next to the camera, a video or an image, live.

The browser captures frames (webcam via getUserMedia, or an uploaded video or image it decodes itself), streams
them to this process over a WebSocket, and shows the RGB frame beside the colour-mapped depth of the student (and of
a teacher with `teacher=`), with the frame rate it sees end to end and each model's latency. Why not Gradio, the
field's usual demo framework: its webcam streaming was measured here at a fraction of this page's frame rate
(docs/benchmarks.md, "kdcache live"). Modules: engine (frames -> depth), runtime (onnxruntime or PyTorch, threads),
server (HTTP and its bounds), stream (the pipelined frame stream), static/ (the page).
"""

from __future__ import annotations

import errno

from kdcache.depth_colors import DEPTH_CMAP
from kdcache.errors import KdcacheError
from kdcache.live.engine import LiveEngine, check_model_spec
from kdcache.live.server import ServerLimits, make_server, serve_in_thread

__all__ = ["LiveEngine", "ServerLimits", "check_model_spec", "make_server", "serve_in_thread", "start_live", "run_live"]

DEFAULT_PORT = 7860
RUNTIMES = ("auto", "onnxruntime", "torch")


def start_live(model: str, teacher: str | None = None, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
               device: str = "auto", input_size: tuple[int, int] | None = None, cmap: str = DEPTH_CMAP,
               threads: int | None = None, runtime: str = "auto", limits: ServerLimits = ServerLimits()):
    """Check the model specs, start loading them and bind the server; returns (server, engine), not yet serving.
    `threads` None: every core but one (the browser's)."""
    from kdcache.depth_colors import lookup_table

    check_model_spec(model, "model")
    lookup_table(cmap)  # an unknown colormap fails here, not on the first frame
    if runtime not in RUNTIMES:
        raise KdcacheError(f"--runtime {runtime}: use one of {', '.join(RUNTIMES)}")
    if teacher:
        check_model_spec(teacher, "teacher")
    engine = LiveEngine(model, teacher, device=device, input_size=input_size, cmap=cmap, threads=threads,
                        runtime=runtime)
    try:
        server = make_server(engine, host, port, limits)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise KdcacheError(f"port {port} on {host} is in use: pass another --port (or --port 0 for any free one)")
        raise KdcacheError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    engine.start_loading()
    return server, engine


def page_url(server) -> str:
    host, port = server.server_address[:2]
    shown = "localhost" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run_live(model: str, teacher: str | None = None, *, open_browser: bool = False, **options) -> None:
    """Serve the page until Ctrl-C (the CLI's `kdcache live`)."""
    from kdcache.console import log

    server, engine = start_live(model, teacher, **options)
    url = page_url(server)
    log(f"[bold]kdcache live[/]: open [cyan]{url}[/] (camera access needs localhost or https; Ctrl-C stops)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log(f"stopped after {engine.frames} frame(s)")
    finally:
        server.server_close()

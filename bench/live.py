"""End-to-end FPS of `kdcache live` in headless Chromium, and of a Gradio webcam-streaming app with the same model.

    python bench/live.py --model RUN_OR_ONNX [--teacher NAME] [--seconds 20] [--page kdcache|gradio ...]

A fake camera plays a generated 30 FPS .y4m (640x480 unless --camera HxW); the page streams it for `seconds` after a warm-up. For
the kdcache page the FPS is the page's own counter (depth frames shown per second); for Gradio (needs
`pip install gradio`, not a kdcache dependency) it is the number of frames its streaming handler processed per
second, an upper bound on what its page shows. Each run also lists every request the page made to a host other
than this machine (offline check: must be none). Last line: `live_fps=<kdcache page FPS>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers.live_browser import chromium, two_scene_frames, wait_for, write_y4m  # noqa: E402


def _external_requests(driver) -> list[str]:
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.startswith(("http", "ws")) and not any(h in url for h in ("://127.0.0.1", "://localhost")):
                urls.append(url)
    return sorted(set(urls))


def _browser(camera: Path):
    return chromium(fake_camera=camera, logging_prefs={"performance": "ALL"})


def bench_kdcache(model: str, teacher: str | None, camera: Path, seconds: float) -> dict:
    from kdcache.live import serve_in_thread, start_live

    server, engine = start_live(model, teacher, port=0)
    serve_in_thread(server)
    engine.wait_loaded()
    url = f"http://127.0.0.1:{server.server_address[1]}/?source=camera"
    try:
        with _browser(camera) as driver:
            driver.get(url)
            wait_for(driver, "window.kdcacheLive && kdcacheLive.frames >= 10", timeout=120)
            start_frames, started = driver.execute_script("return kdcacheLive.frames;"), time.perf_counter()
            samples = []
            while time.perf_counter() - started < seconds:
                time.sleep(1.0)
                samples.append(driver.execute_script("return kdcacheLive.fps;"))
            frames = driver.execute_script("return kdcacheLive.frames;") - start_frames
            elapsed = time.perf_counter() - started
            log = driver.execute_script("return kdcacheLive.log;")
            external = _external_requests(driver)
    finally:
        server.shutdown()
        server.server_close()
    model_ms = [entry["modelMs"][0] for entry in log]
    return {"page": "kdcache", "fps": frames / elapsed, "page_fps_median": statistics.median(samples),
            "model_ms_median": statistics.median(model_ms), "frames": frames, "external_requests": external}


def bench_gradio(model: str, camera: Path, seconds: float) -> dict:
    import gradio as gr

    from kdcache.evaluate.predictors import load_predictor
    from kdcache.depth_colors import colorize, display_range, to_nearness
    from kdcache.infer import full_size

    predictor = load_predictor(model)
    calls: list[float] = []
    model_ms: list[float] = []
    lock = threading.Lock()

    def depth(frame):
        if frame is None:
            return None
        tick = time.perf_counter()
        prediction = predictor.predict(frame)
        model_ms.append(1e3 * (time.perf_counter() - tick))
        nearness = to_nearness(full_size(prediction, frame.shape[:2]), predictor.output_space)
        with lock:
            calls.append(time.perf_counter())
        return colorize(nearness, *display_range(nearness))

    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Row():
            source = gr.Image(sources=["webcam"], streaming=True, label="RGB")
            output = gr.Image(label="depth")
        source.stream(depth, inputs=source, outputs=output, stream_every=0.03, concurrency_limit=1)
    import socket

    with socket.socket() as probe:  # Gradio wants a concrete port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                            share=False)
    try:
        with _browser(camera) as driver:
            driver.get(url)
            _click_webcam_record(driver)
            deadline = time.perf_counter() + 120
            while len(calls) < 10 and time.perf_counter() < deadline:
                time.sleep(0.5)
            start_calls, started = len(calls), time.perf_counter()
            time.sleep(seconds)
            frames, elapsed = len(calls) - start_calls, time.perf_counter() - started
            external = _external_requests(driver)
            driver.save_screenshot(str(Path(tempfile.gettempdir()) / "kdcache-gradio-bench.png"))
    finally:
        demo.close()
    return {"page": f"gradio {gr.__version__}", "fps": frames / elapsed, "frames": frames,
            "model_ms_median": statistics.median(model_ms) if model_ms else None, "external_requests": external}


def _click_webcam_record(driver) -> None:
    """Gradio's webcam component: open the camera, then press its record (start streaming) button."""
    wait_for(driver, "[...document.querySelectorAll('*')].some(e => e.textContent.trim() === 'Click to Access Webcam')")
    driver.execute_script("[...document.querySelectorAll('*')].filter(e => e.textContent.trim() === "
                          "'Click to Access Webcam').at(-1).click();")
    wait_for(driver, "document.querySelector('video') && document.querySelector('video').readyState >= 2")
    time.sleep(1.0)
    driver.execute_script("const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === "
                          "'Record'); if (b) b.click();")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--teacher")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--page", action="append", choices=("kdcache", "gradio"))
    parser.add_argument("--camera", default="480x640", help="fake camera HxW (30 FPS)")
    args = parser.parse_args()
    from kdcache.sizes import parse_hw

    height, width = parse_hw(args.camera, "--camera")
    camera = write_y4m(Path(tempfile.mkdtemp()) / "camera.y4m", two_scene_frames(height, width, period=15, count=60))
    kdcache_fps = None
    for page in args.page or ["kdcache"]:
        if page == "kdcache":
            result = bench_kdcache(args.model, args.teacher, camera, args.seconds)
            kdcache_fps = result["fps"]
        else:
            result = bench_gradio(args.model, camera, args.seconds)
        print(result, flush=True)
    if kdcache_fps is not None:
        print(f"live_fps={kdcache_fps:.1f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

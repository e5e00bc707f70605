"""End-to-end FPS of `kdcache live` in headless Chromium against the camera's, the model-only FPS of the same model in
the same run, and where a frame's time goes; optionally a Gradio webcam-streaming app with the same model.

    python bench/live.py --model RUN_OR_ONNX [--teacher NAME] [--seconds 15] [--camera-fps 30 60]
                         [--page kdcache|gradio] [--threads N] [--runtime auto|onnxruntime|torch]

A fake camera plays a generated .y4m (640x480 unless --camera HxW) at each --camera-fps; the page streams it for
`seconds` after a warm-up, with the browser on the same cores as the server. For the kdcache page the FPS is the
page's own counter (depth frames shown per second); `video_fps` is the rate at which the page saw camera frames;
`latency` is capture to display. `model_only_fps` times the same loaded predictor alone (batch 1, median of 50)
right after the page closed; `http_*` time one frame through the server's POST path (decode, model, colour,
encode). For Gradio (needs `pip install gradio`, not a kdcache dependency) it is the number of frames its streaming
handler processed per second, an upper bound on what its page shows. Each run also lists every request the page made
to a host other than this machine (offline check: must be none), from a browser session of its own with DevTools'
network log, which would cost the timed session a third of its frames; that session also measures how long a camera
frame takes to reach the page (`camera_arrival_lag_ms`), which `capture_to_display_ms` adds to the page's latency.
Last lines: `live_fps@<camera fps>=<page FPS>`.
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


def _browser(camera: Path, network_log: bool = False):
    # chromedriver's performance log turns on DevTools' Network domain, which reports every WebSocket frame with its
    # payload: at 60 FPS that is ~18 MB/s of base64 the browser encodes and ships to chromedriver, which took a third
    # of the page's frame rate (36-40 against 57-58 depth FPS, interleaved). So it is on only for the offline check.
    return chromium(fake_camera=camera, logging_prefs={"performance": "ALL"} if network_log else None)


def offline_check(url: str, camera: Path, seconds: float = 3.0) -> tuple[list[str], float | None]:
    """Every request the page makes to a host other than this machine, from loading to a few seconds of streaming
    (the page requests nothing after it started streaming but the frames on its one WebSocket); and how long after
    its capture a camera frame reaches the page (`camera_arrival_lag`)."""
    with _browser(camera, network_log=True) as driver:
        driver.get(url.replace("?source=camera", ""))
        wait_for(driver, "window.kdcacheLive && kdcacheLive.state === 'ready'", timeout=120)
        lag = camera_arrival_lag(driver)  # before the page streams: its own camera reader would delay the probe's
        driver.execute_script("document.getElementById('camera').click();")
        wait_for(driver, "kdcacheLive.frames >= 10", timeout=120)
        time.sleep(seconds)
        return _external_requests(driver), lag


# Two views of one camera for 40 frames: a <video>'s requestVideoFrameCallback gives each frame's capture time (the
# camera's stamp, on the page's clock); MediaStreamTrackProcessor gives frames as they arrive. A frame arrives within
# one frame interval of its capture, so the capture it belongs to is the latest one stamped before it arrived.
_ARRIVAL_LAG_JS = """
const done = arguments[0];
(async () => {
  const stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}}});
  const [track] = stream.getVideoTracks();
  const video = document.createElement("video");
  video.muted = true; video.srcObject = stream; await video.play();
  const captures = [], arrivals = [];
  const onFrame = (now, meta) => {
    captures.push(meta.captureTime);
    if (arrivals.length < 40) video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  if (!window.MediaStreamTrackProcessor) { done(null); return; }
  const reader = new MediaStreamTrackProcessor({track: track.clone()}).readable.getReader();
  while (arrivals.length < 40) { const {value} = await reader.read(); arrivals.push(performance.now()); value.close(); }
  await new Promise((resolve) => setTimeout(resolve, 100));
  stream.getTracks().forEach((t) => t.stop());
  done({captures, arrivals});
})().catch((err) => done(String(err)));
"""


def camera_arrival_lag(driver) -> float | None:
    """Median ms from a camera frame's capture to its arrival in the page through MediaStreamTrackProcessor (the
    page's camera path): the part of the capture-to-display latency the page's own clock cannot see."""
    driver.set_script_timeout(30)
    seen = driver.execute_async_script(_ARRIVAL_LAG_JS)
    if not isinstance(seen, dict):
        return None
    captures = sorted(c for c in seen["captures"] if c)
    lags = [arrival - max(c for c in captures if c <= arrival) for arrival in seen["arrivals"][5:]
            if any(c <= arrival for c in captures)]
    return _median(lags)


def bench_kdcache(model: str, teacher: str | None, camera: Path, seconds: float, **options) -> dict:
    from kdcache.live import serve_in_thread, start_live

    server, engine = start_live(model, teacher, port=0, **{k: v for k, v in options.items() if v is not None})
    serve_in_thread(server)
    engine.wait_loaded()
    url = f"http://127.0.0.1:{server.server_address[1]}/?source=camera"
    try:
        external, arrival_lag = offline_check(url, camera)
        with _browser(camera) as driver:
            driver.get(url)
            wait_for(driver, "window.kdcacheLive && kdcacheLive.frames >= 10", timeout=120)
            script = "return [kdcacheLive.frames, kdcacheLive.videoFrames || 0];"
            (start_frames, start_video), started = driver.execute_script(script), time.perf_counter()
            time.sleep(seconds)
            frames, video = driver.execute_script(script)
            elapsed = time.perf_counter() - started
            log = driver.execute_script("return kdcacheLive.log;")
            frame_source = driver.execute_script("return kdcacheLive.frameSource;")
    finally:
        server.shutdown()
        server.server_close()
    panel = engine.panels[0]
    return {"page": "kdcache", "fps": (frames - start_frames) / elapsed,
            "video_fps": (video - start_video) / elapsed or None, "frames": frames - start_frames,
            "runtime": getattr(panel, "runtime", None), "model_ms": _median(e["modelMs"][0] for e in log),
            **{f"{key}_ms": _median(e.get(field) for e in log) for key, field in _PAGE_TIMES.items()},
            **{f"{key}_ms": _median(part(e) for e in log) for key, part in _DERIVED_TIMES.items()},
            "latency_p90_ms": _quantile((e.get("latencyMs") for e in log), 0.9), "camera_arrival_lag_ms": arrival_lag,
            # the track path's frames are stamped on arrival, the <video> path's with the camera's own capture time
            "capture_to_display_ms": _median(e["latencyMs"] + (arrival_lag or 0) * (frame_source == "track")
                                             for e in log),
            "frame_source": frame_source, **_model_only(panel.predictor), **_http_path(engine),
            "external_requests": external}


_PAGE_TIMES = {"latency": "latencyMs", "capture": "captureMs", "server": "serverMs", "wait": "waitMs", "draw": "drawMs",
               "round_trip": "roundTripMs"}
_DERIVED_TIMES = {  # the rest of the latency, per frame
    "camera_to_sent": lambda e: e["latencyMs"] - e["roundTripMs"],  # frame stamp to sent: waiting for it, + capture
    "network": lambda e: e["roundTripMs"] - e["serverMs"],  # both WebSocket hops and the page's turn to receive
}


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _quantile(values, q: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else None


def _frame(predictor):
    import numpy as np

    height, width = predictor.input_size or (240, 320)
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _model_only(predictor) -> dict:
    """The predictor alone on a frame at its input size: what the page would show if nothing else cost time."""
    from kdcache.timing import median_seconds

    frame = _frame(predictor)
    return {"model_only_fps": round(1 / median_seconds(lambda: predictor.predict(frame), repeats=50, warmup=5), 1)}


def _http_path(engine) -> dict:
    """One JPEG frame through the server's POST path, 20 times: its server time and the model's share of it."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_frame(engine.panels[0].predictor)).save(buffer, format="JPEG", quality=85)
    replies = [engine.process(buffer.getvalue()) for _ in range(20)][5:]
    return {"http_server_ms": _median(r["server_ms"] for r in replies),
            "http_model_ms": _median(r["panels"][0]["model_ms"] for r in replies)}


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
        with _browser(camera, network_log=True) as driver:  # as in the figures recorded for it
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
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--page", action="append", choices=("kdcache", "gradio"))
    parser.add_argument("--camera", default="480x640", help="fake camera HxW")
    parser.add_argument("--camera-fps", type=int, nargs="+", default=[30, 60])
    parser.add_argument("--threads", type=int, help="kdcache live --threads (default: its own)")
    parser.add_argument("--runtime", help="kdcache live --runtime (default: its own)")
    args = parser.parse_args()
    from kdcache.sizes import parse_hw

    height, width = parse_hw(args.camera, "--camera")
    frames = two_scene_frames(height, width, period=15, count=60)
    figures = {}
    for fps in args.camera_fps:
        camera = write_y4m(Path(tempfile.mkdtemp()) / f"camera{fps}.y4m", frames, fps=fps)
        for page in args.page or ["kdcache"]:
            if page == "kdcache":
                result = bench_kdcache(args.model, args.teacher, camera, args.seconds, threads=args.threads,
                                       runtime=args.runtime)
                figures[fps] = result["fps"]
            else:
                result = bench_gradio(args.model, camera, args.seconds)
            print({"camera_fps": fps, **result}, flush=True)
    for fps, page_fps in figures.items():
        print(f"live_fps@{fps}={page_fps:.1f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

"""The model side of `kdcache live`: one frame in, each panel's depth as compact levels (and timings) out.

Models load in a background thread so the page comes up at once and can say "loading" or why a model failed;
`check_model_spec` does the cheap checks the CLI runs before the server starts. Frames go through the models one at
a time under a lock (the models use every core but the browser's), each panel's colour range is smoothed over
frames as in `kdcache infer`'s videos, and depth leaves as uint8 levels of nearness (`depth_colors.to_levels`, near
= high) that the page colours with `depth_colors.lookup_table`, the colours of `kdcache infer`. `process` serves the
one-frame HTTP endpoint: an encoded image in, colour JPEGs as data URLs out.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from kdcache.depth_colors import DEPTH_CMAP
from kdcache.errors import KdcacheError
from kdcache.timing import machine_load

MAX_FRAME_BYTES = 16 * 2**20
MAX_FRAME_PIXELS = 4096 * 4096
RANGE_SMOOTHING = 0.8  # weight of the previous colour range: steady colours without lagging a scene change


def check_model_spec(spec: str, role: str) -> None:
    """One-line `KdcacheError` unless `spec` can be a student run / checkpoint / .onnx file (or, for the teacher,
    a registered teacher name). Cheap: nothing is loaded; a file that exists but is broken fails on the page."""
    from kdcache.evaluate.predictors import is_student_spec

    path = Path(spec[5:] if spec.startswith("ckpt:") else spec).expanduser()
    if spec.endswith(".onnx"):
        if not path.is_file():
            raise KdcacheError(f"--{role} {spec}: no such ONNX file (make one with kdcache export).")
        return
    if is_student_spec(spec) or spec.startswith("ckpt:"):
        from kdcache.students.checkpoint import find_checkpoint

        find_checkpoint(path)
        return
    if role == "teacher":
        from kdcache.teachers import TEACHERS

        TEACHERS.resolve(spec)  # unknown name: one line listing the known teachers
        return
    raise KdcacheError(f"--{role} {spec}: no such student run, checkpoint or .onnx file "
                       f"(train one with kdcache train, or export one with kdcache export).")


@dataclass
class Panel:
    """One model on the page: its spec, load state, runtime and the colour range carried from frame to frame."""

    role: str  # "student" or "teacher"
    spec: str
    state: str = "loading"  # loading | ready | error
    error: str | None = None
    predictor: object = None
    runtime: str | None = None  # e.g. "onnxruntime, 1 thread"
    window: np.ndarray | None = None

    def info(self) -> dict:
        info = {"role": self.role, "model": self.spec, "state": self.state, "error": self.error,
                "runtime": self.runtime}
        if self.predictor is not None:
            info.update(output_space=self.predictor.output_space,
                        input_size=list(self.predictor.input_size) if self.predictor.input_size else None,
                        kind=self.predictor.kind)
        return info


@dataclass
class PanelDepth:
    """One panel's answer to one frame: nearness levels (h, w) uint8 at the model's output size."""

    role: str
    model: str
    levels: np.ndarray
    model_ms: float
    output_space: str


class FrameError(KdcacheError):
    """A frame the server cannot use (HTTP 400): the page shows the message and the stream goes on."""


class LiveEngine:
    def __init__(self, model: str, teacher: str | None = None, device: str = "auto",
                 input_size: tuple[int, int] | None = None, cmap: str = DEPTH_CMAP, quality: int = 85,
                 threads: int | None = None, runtime: str = "auto"):
        from kdcache.depth_colors import lookup_table
        from kdcache.live.runtime import inference_threads

        self.lut = lookup_table(cmap)  # the page's colours (and POST /api/depth's), made once: cmap never changes
        self.panels = [Panel("student", model)] + ([Panel("teacher", teacher)] if teacher else [])
        self.device, self.input_size, self.cmap, self.quality = device, input_size, cmap, quality
        self.threads, self.runtime = inference_threads(threads), runtime
        self.lock = threading.Lock()
        self.frames = 0
        self.loader = threading.Thread(target=self._load_all, name="kdcache-live-load", daemon=True)

    def start_loading(self) -> None:
        self.loader.start()

    def _load_all(self) -> None:
        from kdcache.console import log
        from kdcache.live.runtime import load_live_predictor

        for panel in self.panels:
            try:
                panel.predictor, panel.runtime = load_live_predictor(panel.spec, self.device, self.input_size,
                                                                     self.threads, self.runtime)
                panel.state = "ready"
                log(f"kdcache live: {panel.role} {panel.spec} runs on {panel.runtime}")
            except Exception as err:  # any load failure is shown on the page rather than killing the server
                panel.state, panel.error = "error", _one_line(err)
                log(f"[bold red]error:[/] cannot load the {panel.role} model {panel.spec}: {panel.error}")

    def wait_loaded(self, timeout: float | None = None) -> bool:
        self.loader.join(timeout)
        return not self.loader.is_alive()

    def info(self) -> dict:
        states = [p.state for p in self.panels]
        state = "error" if "error" in states else "loading" if "loading" in states else "ready"
        lut = base64.b64encode(self.lut.tobytes()).decode("ascii")
        return {"state": state, "panels": [p.info() for p in self.panels], "frames": self.frames, "lut": lut,
                "machine": machine_load().as_dict()}

    def depth(self, image: np.ndarray) -> list[PanelDepth]:
        """Each panel's depth levels for one (H, W, 3) uint8 RGB frame. `LookupError` while the models load,
        `RuntimeError` if one could not be loaded."""
        if any(p.state != "ready" for p in self.panels):
            failed = next((p for p in self.panels if p.state == "error"), None)
            if failed:
                raise RuntimeError(f"the {failed.role} model {failed.spec} could not be loaded: {failed.error}")
            raise LookupError("the model is still loading")
        with self.lock:
            depths = [self._run_panel(panel, image) for panel in self.panels]
            self.frames += 1
        return depths

    def _run_panel(self, panel: Panel, image: np.ndarray) -> PanelDepth:
        from kdcache.depth_colors import smoothed_range, to_levels, to_nearness

        tick = time.perf_counter()
        prediction = panel.predictor.predict(image)
        model_ms = 1e3 * (time.perf_counter() - tick)
        nearness = to_nearness(prediction, panel.predictor.output_space)
        # every other pixel each way: 2nd/98th percentiles within 1 % of the range's width (40 synthetic rooms),
        # a quarter of the sort (0.2 against 0.8 ms at 240x320, on every frame's path); the range is smoothed anyway
        panel.window = smoothed_range(panel.window, nearness[::2, ::2], keep=RANGE_SMOOTHING)
        lo, hi = panel.window
        return PanelDepth(panel.role, panel.spec, to_levels(nearness, float(lo), float(max(hi, lo + 1e-6))),
                          model_ms, panel.predictor.output_space)

    def process(self, data: bytes) -> dict:
        """Depth panels for one encoded frame (POST /api/depth): {"panels": [{role, model, image (data URL of a
        colour JPEG at the frame's size), model_ms}], ...}."""
        started = time.perf_counter()
        image = decode_frame(data)
        lut = self.lut
        size = (image.shape[1], image.shape[0])
        panels = [{"role": d.role, "model": d.model, "model_ms": d.model_ms, "output_space": d.output_space,
                   "image": jpeg_data_url(np.asarray(Image.fromarray(lut[d.levels]).resize(size, Image.BILINEAR)),
                                          self.quality)}
                  for d in self.depth(image)]
        return {"panels": panels, "frame_size": [image.shape[0], image.shape[1]],
                "server_ms": 1e3 * (time.perf_counter() - started), "frame": self.frames}


def decode_frame(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB from JPEG/PNG/WebP bytes, or a `FrameError` naming the problem."""
    if not data:
        raise FrameError("empty frame: the browser sent no image data")
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(data) / 2**20:.1f} MiB is too large (limit {MAX_FRAME_BYTES // 2**20} MiB)")
    too_large = "frame of {}x{} pixels is too large (limit {} pixels): use a smaller image"
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_FRAME_PIXELS:
                raise FrameError(too_large.format(image.width, image.height, MAX_FRAME_PIXELS))
            return np.asarray(image.convert("RGB"))
    except Image.DecompressionBombError:  # Pillow refuses before our own, lower limit can: the same answer
        raise FrameError(f"frame refused as a possible decompression bomb (far over {MAX_FRAME_PIXELS} pixels): "
                         f"use a smaller image") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise FrameError(f"cannot decode the frame ({type(err).__name__}): send a JPEG, PNG or WebP image") from None


def jpeg_data_url(array: np.ndarray, quality: int = 85) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text and not isinstance(err, KdcacheError) else (
        text[0][:400] if text else type(err).__name__)

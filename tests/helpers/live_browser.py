"""Headless Chromium for `kdcache live`'s browser tests and bench/live.py: a fake camera fed from a .y4m file.

Debian's `chromium` + `chromium-driver` (apt) and Selenium (PyPI, the dev extra). Nothing is downloaded: the
driver and browser paths are given explicitly, so Selenium Manager never goes online. `browser_missing()` says
why a browser test cannot run here (the tests skip with that reason).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "chromium-driver")
BROWSER_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--no-default-browser-check", "--mute-audio", "--window-size=1280,900")


def _which(names) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def browser_missing() -> str | None:
    """None when a browser test can run, else the reason it cannot."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not _which(BROWSERS):
        return "no Chromium on PATH (apt-get install chromium chromium-driver; .ci/run does this where apt works)"
    if not _which(DRIVERS):
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return None


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """A YUV4MPEG2 (4:2:0) video of (H, W, 3) uint8 RGB frames: what --use-file-for-fake-video-capture plays."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            rgb = frame.astype(np.float32)
            y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
            u = 128 + (rgb[..., 2] - y) * 0.564
            v = 128 + (rgb[..., 0] - y) * 0.713
            sub = lambda plane: plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))  # noqa: E731
            out.write(b"FRAME\n")
            for plane in (y, sub(u), sub(v)):
                out.write(np.clip(np.round(plane), 0, 255).astype(np.uint8).tobytes())
    return path


def two_scene_frames(height: int = 240, width: int = 320, period: int = 10, count: int = 60) -> list[np.ndarray]:
    """Frames that switch every `period` frames between two scenes (bright left half / bright right half, with
    a gradient so a model's depth differs between them): depth must follow."""
    ramp = np.linspace(40, 220, width, dtype=np.float32)[None, :, None]
    rows = np.linspace(0.6, 1.0, height, dtype=np.float32)[:, None, None]
    left = np.broadcast_to(ramp[:, ::-1] * rows, (height, width, 3))
    right = np.broadcast_to(ramp * rows, (height, width, 3))
    scenes = [left.astype(np.uint8), right.astype(np.uint8)]
    return [scenes[(i // period) % 2] for i in range(count)]


@contextmanager
def chromium(fake_camera: Path | None = None, extra_flags: tuple[str, ...] = (), logging_prefs: dict | None = None):
    """A Selenium Chrome driver on Debian's chromium, headless, with a fresh profile; quits on exit."""
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never try to download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kdcache-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = _which(BROWSERS)
    for flag in (*BROWSER_FLAGS, f"--user-data-dir={profile}", *extra_flags):
        options.add_argument(flag)
    if fake_camera is not None:
        options.add_argument("--use-fake-device-for-media-stream")
        options.add_argument("--use-fake-ui-for-media-stream")
        options.add_argument(f"--use-file-for-fake-video-capture={fake_camera}")
    if logging_prefs:
        options.set_capability("goog:loggingPrefs", logging_prefs)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_which(DRIVERS)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, script: str, timeout: float = 60.0, poll: float = 0.2):
    """Poll a JS expression until it is truthy; returns its value or raises TimeoutError with the page's state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(poll)
    state = driver.execute_script("return {live: window.kdcacheLive && {frames: kdcacheLive.frames, state: "
                                  "kdcacheLive.state, errors: kdcacheLive.errors}, message: "
                                  "document.getElementById('message').textContent};")
    raise TimeoutError(f"waited {timeout:.0f} s for `{script}`; page state: {state}")


def page_message(driver) -> str:
    return driver.execute_script("const m = document.getElementById('message'); return m.hidden ? '' : m.textContent;")

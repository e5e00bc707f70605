"""`kdcache live`: the frame engine and HTTP endpoints directly, then the page in headless Chromium.

The browser tests drive Debian's chromium through Selenium with a fake camera fed from a generated .y4m; they
skip, saying why, where no browser is installed (.ci/run installs one where apt works).
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.live_browser import browser_missing, chromium, page_message, two_scene_frames, wait_for, write_y4m
from helpers.live_socket import hobble


def _student_run(path, seed: int):
    """A small random student whose depth clearly depends on the input (a wide head instead of the near-zero init)."""
    from kdcache.students import create_student, save_student

    torch.manual_seed(seed)
    model = create_student("mobilenetv3-small-lite")
    torch.nn.init.normal_(model.head.weight, std=0.5)
    save_student(model, path, {"resolution": [60, 80]})
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    return {"student": _student_run(root / "student", 0), "teacher": _student_run(root / "teacher", 1), "root": root}


@pytest.fixture
def serve():
    """serve(model, teacher=None) -> base URL of a live server on a free port, stopped after the test."""
    from kdcache.live import serve_in_thread, start_live

    servers = []

    def start(model, teacher=None, runtime="torch", slow_s=0.0, fail=None, **options):
        # runtime torch: no ONNX export of the tiny run dirs; slow_s, fail: hobble the student (helpers.live_socket)
        server, engine = start_live(str(model), str(teacher) if teacher else None, port=0, runtime=runtime, **options)
        serve_in_thread(server)
        servers.append(server)
        engine.wait_loaded(60)
        if slow_s or fail:
            hobble(engine, slow_s, fail or (lambda call: False))
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG")
    return buffer.getvalue()


def _post(url: str, data: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + "api/depth", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _decoded(data_url: str) -> np.ndarray:
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def test_depth_endpoint_serves_colour_maps_that_follow_the_input(runs, serve):
    url = serve(runs["student"], f"ckpt:{runs['teacher']}")
    info = json.loads(urllib.request.urlopen(url + "api/info", timeout=30).read())
    assert info["state"] == "ready" and [p["role"] for p in info["panels"]] == ["student", "teacher"]
    first, second = (_jpeg(frame) for frame in two_scene_frames(120, 160, period=1, count=2))
    status, reply = _post(url, first)
    assert status == 200 and reply["frame_size"] == [120, 160]
    maps = [_decoded(panel["image"]) for panel in reply["panels"]]
    assert [m.shape for m in maps] == [(120, 160, 3)] * 2 and all(p["model_ms"] > 0 for p in reply["panels"])
    _, again = _post(url, second)
    assert np.abs(_decoded(again["panels"][0]["image"]).astype(int) - maps[0]).mean() > 5  # depth followed
    page = urllib.request.urlopen(url, timeout=30).read().decode()
    assert "/static/live.js" in page and "http" not in page.replace("http://localhost", "")  # nothing external


def test_bad_frames_and_paths_get_json_errors(runs, serve):
    url = serve(runs["student"])
    status, reply = _post(url, b"not an image")
    assert status == 400 and "cannot decode the frame" in reply["error"]
    status, reply = _post(url, b"")
    assert status == 400 and "empty frame" in reply["error"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url + "static/../../secret", timeout=30)
    assert err.value.code == 404


def test_a_model_that_cannot_load_is_reported_not_served(runs, serve, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx model")
    url = serve(broken)
    info = json.loads(urllib.request.urlopen(url + "api/info", timeout=30).read())
    assert info["state"] == "error" and "cannot load ONNX model" in info["panels"][0]["error"]
    status, reply = _post(url, _jpeg(np.zeros((32, 32, 3), np.uint8)))
    assert status == 500 and "could not be loaded" in reply["error"]


def test_cli_rejects_a_bad_model_in_one_line_before_serving(run_cli, runs, tmp_path):
    code, out, err = run_cli("live", "--model", tmp_path / "nope")
    assert code == 2 and "no such student run" in err and len(err.strip().splitlines()) <= 2
    code, _, err = run_cli("live", "--model", tmp_path / "nope.onnx")
    assert code == 2 and "no such ONNX file" in err
    code, _, err = run_cli("live", "--model", runs["student"], "--teacher", "no-such-teacher")
    assert code == 2 and "unknown teacher" in err
    code, _, err = run_cli("live", "--model", runs["student"], "--cmap", "no-such-map")
    assert code == 2 and "unknown colormap" in err
    code, _, err = run_cli("live", "--model", runs["student"], "--runtime", "tensorrt")
    assert code == 2 and "--runtime tensorrt: use one of auto, onnxruntime, torch" in err


# -- in a real browser ------------------------------------------------------------------------------------------

browser = pytest.mark.skipif(browser_missing() is not None, reason=f"browser test: {browser_missing()}")


@browser
@pytest.mark.parametrize("frame_source", ["track", "video"])
def test_browser_camera_stream_shows_depth_that_changes_with_the_input(runs, serve, tmp_path, record_property,
                                                                      frame_source):
    camera = write_y4m(tmp_path / "camera.y4m", two_scene_frames(period=10, count=40), fps=30)
    url = serve(runs["student"], f"ckpt:{runs['teacher']}")
    with chromium(fake_camera=camera) as driver:
        if frame_source == "video":  # a browser without MediaStreamTrackProcessor (Firefox, Safari): <video> frames
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                   {"source": "delete window.MediaStreamTrackProcessor;"})
        driver.get(url + "?source=camera")
        wait_for(driver, "window.kdcacheLive && kdcacheLive.frames >= 20", timeout=120)
        log = driver.execute_script("return kdcacheLive.log;")
        fps = driver.execute_script("return kdcacheLive.fps;")
        panels = driver.execute_script("return document.querySelectorAll('#panels canvas.depth').length;")
        captions = driver.execute_script("return [...document.querySelectorAll('#panels figcaption')].map(c => "
                                         "c.textContent);")
        assert panels == 2 and page_message(driver) == ""
        assert all("PyTorch, " in caption for caption in captions[1:]), captions  # which runtime runs
        assert driver.execute_script("return kdcacheLive.frameSource;") == frame_source
    record_property("browser_fps", fps)
    print(f"live page FPS in headless Chromium (student + teacher, 60x80 models): {fps:.1f}")
    assert fps > 0
    # The two scenes of the fake camera give two clusters of RGB thumbnails; depth must differ between them.
    rgb = np.array([entry["rgb"] for entry in log], dtype=float)
    scene = rgb[:, :8].mean(axis=1) > rgb[:, 8:16].mean(axis=1)  # first row: left brighter than right?
    assert scene.any() and (~scene).any(), "the fake camera's two scenes did not both arrive"
    for panel in range(2):
        depth = np.array([entry["depth"][panel] for entry in log], dtype=float)
        between = np.abs(depth[scene].mean(axis=0) - depth[~scene].mean(axis=0)).mean()
        assert between > 5, f"panel {panel}: depth does not follow the input (mean change {between:.1f} / 255)"


@browser
def test_browser_pipeline_keeps_frame_order_and_builds_no_backlog_behind_a_slow_model(runs, serve, tmp_path):
    camera = write_y4m(tmp_path / "camera.y4m", two_scene_frames(period=10, count=40), fps=30)
    url = serve(runs["student"], slow_s=0.25)  # 4 FPS at most from a 30 FPS camera
    with chromium(fake_camera=camera) as driver:
        driver.get(url + "?source=camera")
        wait_for(driver, "window.kdcacheLive && kdcacheLive.frames >= 8", timeout=120)
        live = driver.execute_script("return kdcacheLive;")
    ids = [entry["id"] for entry in live["log"]]
    assert ids == sorted(set(ids)), "frames were shown out of order"
    assert live["skipped"] > live["frames"], "frames were not dropped at the source"
    waits = [entry["waitMs"] for entry in live["log"][3:]]
    assert sorted(waits)[len(waits) // 2] > 100, f"no frame was waiting while the model ran: waits {waits} ms"
    # Two in flight: a frame waits for at most the one before it, so capture to display stays under ~2 model times.
    latencies = [entry["latencyMs"] for entry in live["log"][3:]]
    assert max(latencies) < 3 * 250 + 400, f"a backlog built up: latencies {latencies} ms"
    assert live["fps"] < 1000 / 250 + 0.5 and not live["errors"] and live["state"] == "streaming"


@browser
def test_browser_stream_goes_on_after_a_failing_frame(runs, serve, tmp_path):
    camera = write_y4m(tmp_path / "camera.y4m", two_scene_frames(period=10, count=40), fps=30)
    url = serve(runs["student"], fail=lambda call: call % 4 == 0)
    with chromium(fake_camera=camera) as driver:
        driver.get(url + "?source=camera")
        wait_for(driver, "window.kdcacheLive && kdcacheLive.frameErrors >= 3", timeout=120)
        shown = driver.execute_script("return kdcacheLive.frames;")
        wait_for(driver, f"kdcacheLive.frames >= {shown + 5}", timeout=60)  # still streaming after the failures
        live = driver.execute_script("return kdcacheLive;")
    assert live["state"] == "streaming" and "RuntimeError: model failed on call" in live["errors"][0]
    ids = [entry["id"] for entry in live["log"]]
    assert ids == sorted(set(ids))


@browser
def test_browser_shows_clear_messages_for_bad_input(runs, serve, tmp_path):
    url = serve(runs["student"])
    bad_video = tmp_path / "broken.webm"
    bad_video.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40)
    image = tmp_path / "room.png"
    Image.fromarray(two_scene_frames(96, 128, count=1)[0]).save(image)
    # A camera exists (the fake device) but the permission prompt is denied, as a user clicking "Block" does.
    with chromium(extra_flags=("--use-fake-device-for-media-stream", "--deny-permission-prompts")) as driver:
        driver.get(url)
        wait_for(driver, "window.kdcacheLive && kdcacheLive.state === 'ready'")
        driver.find_element("id", "camera").click()
        message = wait_for(driver, "kdcacheLive.errors.length && kdcacheLive.errors.at(-1)")
        assert "Camera access was not allowed" in message
        file_input = driver.find_element("id", "file")
        file_input.send_keys(str(bad_video))
        message = wait_for(driver, "kdcacheLive.errors.at(-1).includes('broken.webm') && kdcacheLive.errors.at(-1)")
        assert "Cannot decode the video broken.webm" in message
        file_input.send_keys(str(image))
        wait_for(driver, "kdcacheLive.state === 'shown'")
        assert driver.execute_script("return kdcacheLive.frames;") == 1 and page_message(driver) == ""


def _webm(path, frames):
    import imageio.v2 as imageio

    writer = imageio.get_writer(str(path), format="FFMPEG", mode="I", fps=30, codec="libvpx-vp9", macro_block_size=1)
    for frame in frames:
        writer.append_data(frame)
    writer.close()
    return path


@browser
def test_browser_streams_an_uploaded_video(runs, serve, tmp_path):
    video = _webm(tmp_path / "rooms.webm", two_scene_frames(120, 160, period=5, count=30))
    url = serve(runs["student"])
    with chromium() as driver:
        driver.get(url)
        wait_for(driver, "window.kdcacheLive && kdcacheLive.state === 'ready'")
        driver.find_element("id", "file").send_keys(str(video))
        wait_for(driver, "kdcacheLive.frames >= 8", timeout=120)
        assert page_message(driver) == "" and not driver.execute_script("return kdcacheLive.errors.length;")
        assert driver.find_element("id", "stop").is_enabled()
        driver.find_element("id", "stop").click()
        frames = driver.execute_script("return kdcacheLive.frames;")
        wait_for(driver, "kdcacheLive.state === 'stopped'")
        assert driver.execute_script("return kdcacheLive.frames;") <= frames + 1  # the stream really stopped


@browser
def test_browser_says_when_the_model_cannot_be_loaded(serve, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    url = serve(broken)
    with chromium() as driver:
        driver.get(url)
        message = wait_for(driver, "window.kdcacheLive && kdcacheLive.errors.length && kdcacheLive.errors[0]")
        assert "could not be loaded" in message and "broken.onnx" in message
        assert driver.find_element("id", "camera").get_attribute("disabled")

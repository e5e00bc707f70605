"""`kdcache live`'s frame stream (/api/stream) spoken by a Python WebSocket client: depth levels in frame order, a slow
model drops frames instead of queueing them, a failing or malformed frame is answered and the stream goes on."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
import torch

from helpers.live_browser import two_scene_frames
from helpers.live_socket import StreamClient, hobble


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from kdcache.students import create_student, save_student

    torch.manual_seed(0)
    model = create_student("mobilenetv3-small-lite")
    torch.nn.init.normal_(model.head.weight, std=0.5)  # depth that clearly depends on the input
    return save_student(model, tmp_path_factory.mktemp("stream") / "student", {"resolution": [60, 80]})


@pytest.fixture
def stream(student):
    """stream(slow_s=0, fail=(), **limits) -> (client, engine): a server with those `ServerLimits` whose model takes
    `slow_s` longer per frame and raises on the calls numbered in `fail` (1-based)."""
    from kdcache.live import ServerLimits, serve_in_thread, start_live

    opened = []

    def start(slow_s: float = 0.0, fail=(), **limits):
        server, engine = start_live(str(student), port=0, runtime="torch", limits=ServerLimits(**limits))
        serve_in_thread(server)
        engine.wait_loaded(60)
        hobble(engine, slow_s, fail=lambda call: call in fail)
        client = StreamClient(server.server_address[:2])
        opened.append((server, client))
        return client, engine

    yield start
    for server, client in opened:
        client.close()
        server.shutdown()
        server.server_close()


def test_depth_levels_come_back_per_frame_coloured_by_the_shared_table(stream):
    from kdcache.depth_colors import lookup_table

    client, engine = stream()
    frames = two_scene_frames(60, 80, period=1, count=2)
    levels = []
    for frame_id, frame in enumerate(frames, 1):
        client.send_frame(frame_id, frame)
        kind, (header, planes) = client.receive()
        assert kind == "depth" and header["id"] == frame_id and planes[0].shape == (60, 80)
        assert header["panels"][0]["model_ms"] > 0 and header["server_ms"] >= header["panels"][0]["model_ms"]
        levels.append(planes[0].astype(int))
    assert np.abs(levels[0] - levels[1]).mean() > 5  # depth followed the input
    assert levels[0].max() - levels[0].min() > 200  # the 2nd..98th percentiles span the levels
    lut = np.frombuffer(base64.b64decode(engine.info()["lut"]), np.uint8).reshape(256, 3)
    assert np.array_equal(lut, lookup_table())


def test_a_slow_model_drops_waiting_frames_and_keeps_their_order(stream):
    client, _ = stream(slow_s=0.4)
    frame = two_scene_frames(60, 80, count=1)[0]
    started = time.perf_counter()
    for frame_id in range(1, 7):  # six frames at once: the model takes one, the newest waits, the rest drop
        client.send_frame(frame_id, frame)
    replies = client.replies(6)
    depth = [header["id"] for kind, (header, _), _ in [r for r in replies if r[0] == "depth"]]
    dropped = sorted(reply["id"] for kind, reply, _ in replies if kind == "notice" and reply.get("dropped"))
    assert depth[-1] == 6 and depth == sorted(depth) and len(depth) <= 2  # the newest is never dropped
    assert sorted(depth + dropped) == list(range(1, 7))  # every frame is answered
    assert replies[-1][2] - started < 0.4 * len(depth) + 1.5  # no frame waited for a backlog of others


def test_a_failing_or_malformed_frame_is_answered_and_the_stream_goes_on(stream):
    client, _ = stream(fail=(2,))
    frame = two_scene_frames(60, 80, count=1)[0]
    answers = []
    for frame_id in (1, 2, 3):
        client.send_frame(frame_id, frame)
        answers.append(client.receive())
    client.send_bytes(b"\x04\0\0\0\x10\0\x10\0" + b"\0" * 7)  # frame 4 claims 16x16 RGBA but carries 7 bytes
    answers.append(client.receive())
    client.send_frame(5, frame)
    answers.append(client.receive())
    kinds = [kind for kind, _ in answers]
    assert kinds == ["depth", "notice", "depth", "notice", "depth"]
    assert answers[1][1] == {"id": 2, "error": "RuntimeError: model failed on call 2"}
    assert answers[3][1]["id"] == 4 and "expected 1032" in answers[3][1]["error"]


def test_text_messages_are_refused_with_a_close(stream):
    from wsproto.events import TextMessage

    client, _ = stream()
    client.sock.sendall(client.connection.send(TextMessage(data="hello")))
    assert client.receive() == ("close", 1008)


def test_a_slow_model_is_not_mistaken_for_an_idle_stream(stream):
    client, _ = stream(slow_s=1.5, idle_timeout_s=0.5)  # the page sends nothing while it waits for the model
    client.send_frame(1, two_scene_frames(60, 80, count=1)[0])
    kind, (header, _) = client.receive()
    assert kind == "depth" and header["id"] == 1
    assert client.receive() == ("close", 1001)  # and once answered, an idle stream is closed


def test_levels_coloured_by_the_table_are_the_colours_of_kdcache_infer():
    from kdcache.depth_colors import DEPTH_CMAP, colorize, lookup_table, to_levels

    values = np.random.default_rng(0).normal(2.0, 1.0, (40, 50))
    values[0, 0] = np.nan
    for cmap in (DEPTH_CMAP, "viridis"):
        reference = colorize(values, 1.0, 3.0, cmap=cmap)
        shown = lookup_table(cmap)[to_levels(values, 1.0, 3.0)]
        step = np.abs(np.diff(lookup_table(cmap).astype(int), axis=0)).max()  # one level's colour change
        assert np.abs(shown.astype(int) - reference).max() <= step

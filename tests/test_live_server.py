"""`kdcache live`'s server bounds every request: its length, its time and the connections held open (raw sockets
on 127.0.0.1, since a well-behaved client never sends what these tests send)."""

from __future__ import annotations

import json
import socket
import struct
import time
import zlib

import pytest
import torch

from helpers.live_socket import StreamClient, raw_request, read_response


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height 1-bit pixels with one tiny row of data: kilobytes that decode to gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from kdcache.students import create_student, save_student

    torch.manual_seed(0)
    return save_student(create_student("mobilenetv3-small-lite"), tmp_path_factory.mktemp("bounds") / "student",
                        {"resolution": [60, 80]})


@pytest.fixture
def live_server(student):
    """live_server(**limits) -> (host, port) of a server with those `ServerLimits`, stopped after the test."""
    from kdcache.live import ServerLimits, serve_in_thread, start_live

    servers = []

    def start(**limits):
        server, engine = start_live(str(student), port=0, runtime="torch", limits=ServerLimits(**limits))
        serve_in_thread(server)
        servers.append(server)
        engine.wait_loaded(60)
        return server.server_address[:2]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _post_head(length: str) -> bytes:
    return f"POST /api/depth HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}".encode("latin-1")


@pytest.mark.parametrize("length, status", [("-1", 400), ("abc", 400), ("1e9", 400), ("\u00b2", 400), ("", 411),
                                            ("9" * 5000, 413)])
def test_a_content_length_that_is_not_a_byte_count_gets_a_json_error_and_no_body_is_read(live_server, length, status):
    address = live_server()
    head = _post_head(length) if length else b"POST /api/depth HTTP/1.1\r\nHost: 127.0.0.1"
    got, body = raw_request(address, head, b"\xff" * 2**20)  # streamed body: must not be read, let alone kept
    error = json.loads(body)["error"]
    assert got == status and ("Content-Length" in error or "too large" in error), (got, error)


def test_chunked_and_oversized_bodies_are_refused_before_reading(live_server):
    address = live_server(max_body_bytes=1000)
    got, body = raw_request(address, b"POST /api/depth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
                            b"100000\r\n" + b"\0" * 2**16)
    assert got == 411 and "not chunked" in json.loads(body)["error"]
    got, body = raw_request(address, _post_head("1001"), b"\0" * 1001)
    assert got == 413 and "too large" in json.loads(body)["error"]


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (5000, 5000)])
def test_decompression_bombs_and_huge_frames_get_400_not_500(live_server, width, height):
    bomb = _png_header_only(width, height)
    got, body = raw_request(live_server(), _post_head(str(len(bomb))), bomb)
    error = json.loads(body)["error"]
    assert got == 400 and ("too large" in error or "decompression bomb" in error), (got, error)


def test_an_idle_connection_is_closed_after_the_idle_timeout(live_server):
    address = live_server(idle_timeout_s=0.5)
    with socket.create_connection(address, timeout=10) as sock:
        started = time.perf_counter()
        assert sock.recv(1024) == b""  # the server closed it, not the test's 10 s timeout
        assert time.perf_counter() - started < 5


def test_a_body_that_trickles_in_is_cut_off_at_the_request_timeout(live_server):
    address = live_server(idle_timeout_s=2.0, request_timeout_s=1.0)
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(_post_head("1000") + b"\r\n\r\n")
        started = time.perf_counter()
        for _ in range(30):  # one byte per 0.2 s: every read is quick, the whole body would take 200 s
            try:
                sock.sendall(b"x")
            except OSError:
                break
            time.sleep(0.2)
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        sock.settimeout(10)
        status, body = read_response(sock)
    assert status == 408 and "took over" in json.loads(body)["error"] and time.perf_counter() - started < 5


def test_connections_beyond_the_limit_get_a_503_and_the_server_stays_usable(live_server):
    address = live_server(max_connections=3, idle_timeout_s=5.0)
    idle = [socket.create_connection(address, timeout=10) for _ in range(3)]
    try:
        time.sleep(0.2)
        status, body = raw_request(address, b"GET /api/info HTTP/1.1\r\nHost: x")
        assert status == 503 and "open connections" in json.loads(body)["error"]
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 5
    while (status := raw_request(address, b"GET /api/info HTTP/1.1\r\nHost: x\r\nConnection: close")[0]) == 503:
        assert time.monotonic() < deadline, "closed connections were never released"
        time.sleep(0.05)
    assert status == 200


def test_a_stream_message_over_the_limit_closes_the_stream_with_1009(live_server):
    client = StreamClient(live_server(max_body_bytes=50_000))
    try:
        client.send_bytes(b"\0" * 60_000)
        assert client.receive() == ("close", 1009)
    finally:
        client.close()


def test_an_idle_stream_is_closed(live_server):
    client = StreamClient(live_server(idle_timeout_s=0.5))
    try:
        started = time.perf_counter()
        assert client.receive() == ("close", 1001) and time.perf_counter() - started < 5
    finally:
        client.close()

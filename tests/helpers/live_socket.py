"""Raw sockets against `kdcache live` on 127.0.0.1: hand-written HTTP requests, and a WebSocket client of the frame
stream (`kdcache/live/stream.py`) built on wsproto, as a page would speak it."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import numpy as np


def raw_request(address, head: bytes, body: bytes = b"", timeout: float = 5.0) -> tuple[int | None, bytes]:
    """Send `head` (request line and headers, without the blank line) and `body`; (status, response body) of the
    answer, or (None, b"") if the server closed without one. Raises TimeoutError if it neither answers nor closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(head + b"\r\n\r\n")
        try:
            sock.sendall(body)
        except OSError:  # the server answered and closed without reading the body: what a refusal should do
            pass
        return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return (None, b"") if not data else (int(data.split()[1]), b"")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = lengths[0] if lengths else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), body


def hobble(engine, slow_s: float = 0.0, fail=lambda call: False) -> list[int]:
    """Make the engine's student `slow_s` slower per frame and raise on the calls (1-based) where `fail(call)`;
    returns the list of calls made so far."""
    predictor, calls = engine.panels[0].predictor, []
    predict = predictor.predict

    def hobbled(image):
        calls.append(len(calls) + 1)
        time.sleep(slow_s)
        if fail(len(calls)):
            raise RuntimeError(f"model failed on call {len(calls)}")
        return predict(image)

    predictor.predict = hobbled
    return calls


class StreamClient:
    """The page's side of /api/stream: `send_frame` RGB frames, `receive` the replies."""

    def __init__(self, address, timeout: float = 30.0):
        from wsproto import Connection, ConnectionType

        self.sock = socket.create_connection(address, timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        head, rest = response.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.connection = Connection(ConnectionType.CLIENT, trailing_data=rest)
        self.events = []

    def send_bytes(self, data: bytes) -> None:
        from wsproto.events import BytesMessage

        self.sock.sendall(self.connection.send(BytesMessage(data=data)))

    def send_frame(self, frame_id: int, rgb: np.ndarray) -> None:
        rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
        self.send_bytes(struct.pack("<IHH", frame_id, *rgb.shape[:2]) + rgba.tobytes())

    def receive(self) -> tuple[str, object]:
        """("depth", (header, [levels...])), ("notice", {...}) or ("close", code)."""
        from wsproto.events import BytesMessage, CloseConnection, TextMessage

        parts = []
        while True:
            while self.events:
                event = self.events.pop(0)
                if isinstance(event, CloseConnection):
                    return "close", event.code
                parts.append(event.data)
                if event.message_finished and isinstance(event, TextMessage):
                    return "notice", json.loads("".join(parts))
                if event.message_finished and isinstance(event, BytesMessage):
                    return "depth", _depth_reply(b"".join(parts))
            data = self.sock.recv(2**20)
            self.connection.receive_data(data or None)
            self.events.extend(self.connection.events())

    def replies(self, count: int) -> list[tuple[str, object, float]]:
        """The next `count` replies, each with the time it arrived."""
        return [(*self.receive(), time.perf_counter()) for _ in range(count)]

    def close(self) -> None:
        self.sock.close()


def _depth_reply(message: bytes) -> tuple[dict, list[np.ndarray]]:
    length = struct.unpack_from("<I", message)[0]
    header = json.loads(message[4:4 + length])
    offset, planes = 4 + length, []
    for panel in header["panels"]:
        size = panel["height"] * panel["width"]
        planes.append(np.frombuffer(message, np.uint8, size, offset).reshape(panel["height"], panel["width"]))
        offset += size
    return header, planes

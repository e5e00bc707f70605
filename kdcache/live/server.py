"""The HTTP side of `kdcache live`: a static page (package data), JSON endpoints and the frame stream, stdlib only.

    GET  /               the page (kdcache/live/static/index.html, with live.js and live.css beside it)
    GET  /api/info       {"state": loading|ready|error, "panels": [...], "lut": ...}: what the page shows first
    GET  /api/stream     WebSocket: raw frames in, raw depth out, pipelined (kdcache/live/stream.py)
    POST /api/depth      body = one encoded frame (JPEG/PNG/WebP) -> {"panels": [{image, model_ms, ...}], ...}
                         (one frame per request, for scripts; the page streams over /api/stream)

Every request is bounded, so no client can make the server grow or hold its threads (`ServerLimits`): a body
needs a `Content-Length` no larger than `max_body_bytes` (no chunked or unbounded bodies), every read waits at
most `idle_timeout_s` (an idle keep-alive or WebSocket connection is closed after that), a body must arrive within
`request_timeout_s`, and at most `max_connections` connections are open at once (the next gets a 503). Every error
is JSON `{"error": message}` with a 4xx/5xx status, which the page shows. Nothing is fetched from anywhere else.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from kdcache.live.engine import MAX_FRAME_BYTES, FrameError, LiveEngine

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "live.js": "text/javascript; charset=utf-8",
                "live.css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class ServerLimits:
    """What one client may ask of the server: the body's size, the time it may take, and open connections."""

    max_body_bytes: int = MAX_FRAME_BYTES
    idle_timeout_s: float = 30.0     # any single read (request line, headers, body, a WebSocket message)
    request_timeout_s: float = 60.0  # a whole request body, however it trickles in
    max_connections: int = 32        # the page needs 2 (its stream and a request); the rest is headroom


def static_file(name: str) -> bytes:
    return resources.files("kdcache.live").joinpath("static", name).read_bytes()


class RequestError(Exception):
    """A request the server refuses before reading its body: answered with `status` and closed."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class LiveHandler(BaseHTTPRequestHandler):
    engine: LiveEngine     # set on the subclass `make_server` builds
    limits: ServerLimits   # likewise
    server_version = "kdcache-live"
    protocol_version = "HTTP/1.1"  # keep-alive: the page's requests reuse one connection

    def setup(self) -> None:
        self.timeout = self.limits.idle_timeout_s  # StreamRequestHandler applies it to the socket
        super().setup()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature) — one line per frame is noise
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):  # the page was closed or stopped reading
            self.close_connection = True

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = self.path.split("?", 1)[0]
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if path == "/api/stream":
            from kdcache.live.stream import serve_stream

            serve_stream(self)
        elif path == "/api/info":
            self._json(HTTPStatus.OK, self.engine.info())
        elif name in STATIC_FILES and (path.startswith("/static/") or name == "index.html"):
            self._send(HTTPStatus.OK, static_file(name), STATIC_FILES[name])
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        try:
            data = self._read_body()
        except RequestError as err:
            self.close_connection = True  # the unread body must not be parsed as the next request
            self._json(err.status, {"error": str(err)})
            return
        if self.path.split("?", 1)[0] != "/api/depth":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
            return
        try:
            self._json(HTTPStatus.OK, self.engine.process(data))
        except FrameError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except LookupError as err:  # still loading: the page waits and retries
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(err), "retry": True})
        except Exception as err:  # a model that fails on a frame: say so on the page, keep the server up
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})

    def _read_body(self) -> bytes:
        """The request body, bounded in size and time; `RequestError` for any body the server will not read."""
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the frame with a Content-Length, not chunked")
        text = (self.headers.get("Content-Length") or "").strip()
        if not (text.isascii() and text.isdigit()):  # also refuses "-1", "abc", "1e9", "²" and a missing length
            raise RequestError(HTTPStatus.LENGTH_REQUIRED if not text else HTTPStatus.BAD_REQUEST,
                               f"Content-Length must be a byte count, got {text[:40]!r}" if text
                               else "send the frame with a Content-Length")
        length = int(text) if len(text) <= 18 else 10**18  # int() refuses over 4300 digits: never ask it
        if length > self.limits.max_body_bytes:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"frame of {length} bytes is too large "
                               f"(limit {self.limits.max_body_bytes // 2**20} MiB): send a smaller image")
        deadline = time.monotonic() + self.limits.request_timeout_s
        chunks, received = [], 0
        while received < length:
            chunk = self.rfile.read1(min(length - received, 2**20))
            if not chunk:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"the body ended after {received} of {length} bytes")
            if time.monotonic() > deadline:
                raise RequestError(HTTPStatus.REQUEST_TIMEOUT, f"the body took over "
                                   f"{self.limits.request_timeout_s:.0f} s to arrive")
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)


class LiveServer(ThreadingHTTPServer):
    """A threading HTTP server that refuses connections beyond `limits.max_connections` with a 503."""

    daemon_threads = True

    def __init__(self, address, handler, limits: ServerLimits):
        self.limits, self.open_connections, self._count_lock = limits, 0, threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self._count_lock:
            full = self.open_connections >= self.limits.max_connections
            self.open_connections += 0 if full else 1
        if full:
            _refuse_busy(request, self.limits.max_connections)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.open_connections -= 1


def _refuse_busy(request: socket.socket, limit: int) -> None:
    body = json.dumps({"error": f"the server already has {limit} open connections: close other kdcache live "
                                "pages or clients"}).encode()
    try:
        request.settimeout(1.0)
        request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    except OSError:
        pass


def make_server(engine: LiveEngine, host: str = "127.0.0.1", port: int = 7860,
                limits: ServerLimits = ServerLimits()) -> LiveServer:
    """A bound (not yet serving) server; port 0 picks a free port (`server.server_address[1]`)."""
    handler = type("BoundLiveHandler", (LiveHandler,), {"engine": engine, "limits": limits})
    return LiveServer((host, port), handler, limits)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, benchmarks); stop with `server.shutdown()`."""
    thread = threading.Thread(target=server.serve_forever, name="kdcache-live-http", daemon=True)
    thread.start()
    return thread

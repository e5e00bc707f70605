"""The HTTP side of `kdcache live`: a static page (package data) and two JSON endpoints, standard library only.

    GET  /               the page (kdcache/live/static/index.html, with live.js and live.css beside it)
    GET  /api/info       {"state": loading|ready|error, "panels": [...]}: what the page shows before streaming
    POST /api/depth      body = one encoded frame (JPEG/PNG/WebP) -> {"panels": [{image, model_ms, ...}], ...}

The page keeps one frame in flight: it sends the next frame when the previous depth arrives, so a slow model
lowers the frame rate instead of building a queue (the picture is never more than one frame behind). Every error
is JSON `{"error": message}` with a 4xx/5xx status, which the page shows in place of the stream. Nothing is
fetched from anywhere else: the page works offline.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from kdcache.live.engine import MAX_FRAME_BYTES, FrameError, LiveEngine

STATIC_FILES = {"index.html": "text/html; charset=utf-8", "live.js": "text/javascript; charset=utf-8",
                "live.css": "text/css; charset=utf-8"}


def static_file(name: str) -> bytes:
    return resources.files("kdcache.live").joinpath("static", name).read_bytes()


class LiveHandler(BaseHTTPRequestHandler):
    engine: LiveEngine  # set on the subclass `make_server` builds
    server_version = "kdcache-live"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature) — one line per frame is noise
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the page was closed or reloaded mid-frame
            self.close_connection = True

    def _json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = self.path.split("?", 1)[0]
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if path == "/api/info":
            self._json(HTTPStatus.OK, self.engine.info())
        elif name in STATIC_FILES and (path.startswith("/static/") or name == "index.html"):
            self._send(HTTPStatus.OK, static_file(name), STATIC_FILES[name])
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?", 1)[0] != "/api/depth":
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {self.path}"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FRAME_BYTES:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"frame too large ({length} bytes)"})
            return
        data = self.rfile.read(length)
        try:
            self._json(HTTPStatus.OK, self.engine.process(data))
        except FrameError as err:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(err)})
        except LookupError as err:  # still loading: the page waits and retries
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(err), "retry": True})
        except Exception as err:  # a model that fails on a frame: say so on the page, keep the server up
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(err).__name__}: {err}"})


def make_server(engine: LiveEngine, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """A bound (not yet serving) server; port 0 picks a free port (`server.server_address[1]`)."""
    handler = type("BoundLiveHandler", (LiveHandler,), {"engine": engine})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, benchmarks); stop with `server.shutdown()`."""
    thread = threading.Thread(target=server.serve_forever, name="kdcache-live-http", daemon=True)
    thread.start()
    return thread

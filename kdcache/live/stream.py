"""The live page's frame stream: a WebSocket (RFC 6455) on `GET /api/stream`, frames in, depth out, pipelined.

Why a WebSocket and not a request per frame: one connection carries every frame both ways, in binary, with no
per-frame headers, JSON or base64. The framing is wsproto's (sans-IO, small, well kept): it parses, unmasks and
validates frames, while the stdlib server keeps its own sockets, threads and `ServerLimits`.

Messages (all integers little-endian):
- page -> server, binary: uint32 frame id, uint16 height, uint16 width, then height x width x 4 bytes of RGBA (the
  canvas's own pixels, captured at the model's input size: no encoding on the page, no decoding here).
- server -> page, binary: uint32 n, n bytes of JSON {"id", "server_ms", "wait_ms", "frame", "panels": [{role, model,
  model_ms, height, width, output_space}]}, then each panel's height x width uint8 nearness levels, which the page
  colours with the table of `/api/info` (`depth_colors.lookup_table`).
- server -> page, text: JSON {"id", "error"} for a frame that failed (the stream goes on), {"id", "retry": true}
  while the models load, {"id", "dropped": true} for a frame replaced by a newer one before the model got to it.

Pipelining without a backlog: the page keeps up to two frames in flight, so it captures and sends the next frame
while the model runs; here a reader thread receives frames and a worker runs the model, with a slot of one frame
between them. A frame that arrives while another waits replaces it (the older is dropped and the page told), so a
slow model lowers the frame rate and never builds a queue; the worker takes frames in the order they came.
"""

from __future__ import annotations

import json
import struct
import threading
import time

import numpy as np
from wsproto import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.utilities import LocalProtocolError, RemoteProtocolError, generate_accept_token

from kdcache.live.engine import FrameError

FRAME_HEADER = struct.Struct("<IHH")  # frame id, height, width
MESSAGE_TOO_BIG, GOING_AWAY, POLICY_VIOLATION = 1009, 1001, 1008


def serve_stream(handler) -> None:
    """Upgrade the request `handler` (a `LiveHandler` on GET /api/stream) to the frame stream and serve it."""
    key = handler.headers.get("Sec-WebSocket-Key")
    if (handler.headers.get("Upgrade") or "").lower() != "websocket" or not key:
        handler._json(400, {"error": "/api/stream is a WebSocket: open it with new WebSocket(...)"})
        return
    handler.close_connection = True  # when the stream ends, so does the connection
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode())
    handler.end_headers()
    handler.wfile.flush()
    StreamSession(handler).run()


class LatestFrame:
    """A slot of one frame between the reader and the worker: `put` replaces (and returns) a frame still waiting."""

    def __init__(self):
        self._ready = threading.Condition()
        self._frame: tuple[int, np.ndarray | Exception, float] | None = None
        self._closed = False

    def put(self, frame: tuple[int, np.ndarray | Exception, float]) -> tuple | None:
        with self._ready:
            replaced, self._frame = self._frame, frame
            self._ready.notify()
            return replaced

    def take(self) -> tuple | None:
        """The waiting frame, once there is one; None once closed."""
        with self._ready:
            while self._frame is None and not self._closed:
                self._ready.wait()
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._ready:
            self._closed, self._frame = True, None
            self._ready.notify()


class StreamSession:
    """One page's stream: the handler's thread reads frames, a worker thread runs them through the engine."""

    def __init__(self, handler):
        self.engine, self.limits = handler.engine, handler.limits
        self.socket, self.rfile = handler.connection, handler.rfile
        self.connection = Connection(ConnectionType.SERVER)
        self.send_lock = threading.Lock()  # the worker's replies and the reader's notices share the socket
        self.slot = LatestFrame()
        self.unanswered = 0  # frames received and not yet answered: the page is waiting, not idle

    def run(self) -> None:
        worker = threading.Thread(target=self._work, name="kdcache-live-stream", daemon=True)
        worker.start()
        try:
            self._read()
        except TimeoutError:  # idle past the limit with no frame to answer: close; the page reopens when it streams
            self._close(GOING_AWAY, "idle")
        except (OSError, RemoteProtocolError, LocalProtocolError):
            pass  # the page went away or spoke something else than RFC 6455: nothing left to answer
        finally:
            self.slot.close()
            worker.join()

    def _read(self) -> None:
        parts, size = [], 0
        read = self.rfile.read1  # first what the HTTP parser buffered, then the socket itself (a file object
        while True:              # refuses every read after one timed out)
            try:
                data = read(2**20)
            except TimeoutError:
                if self.unanswered:  # a slow model (a big teacher on a CPU) keeps the page waiting: not idle
                    read = self.socket.recv
                    continue
                raise
            read = self.socket.recv
            self.connection.receive_data(data or None)
            for event in self.connection.events():
                if isinstance(event, BytesMessage):
                    size += len(event.data)
                    if size > self.limits.max_body_bytes:
                        self._close(MESSAGE_TOO_BIG, f"frame over {self.limits.max_body_bytes} bytes")
                        return
                    parts.append(event.data)
                    if event.message_finished:
                        self._received(b"".join(parts))
                        parts, size = [], 0
                elif isinstance(event, TextMessage):
                    self._close(POLICY_VIOLATION, "send frames as binary messages")
                    return
                elif isinstance(event, Ping):
                    self._send(event.response())
                elif isinstance(event, CloseConnection):
                    if data:  # the page closed: answer its close frame
                        self._send(event.response())
                    return

    def _received(self, message: bytes) -> None:
        arrived = time.perf_counter()
        try:
            frame_id, image = parse_frame(message)
        except FrameError as err:
            frame_id, image = (FRAME_HEADER.unpack_from(message)[0] if len(message) >= 4 else 0), err
        with self.send_lock:
            self.unanswered += 1
        replaced = self.slot.put((frame_id, image, arrived))
        if replaced is not None:
            self._send_json({"id": replaced[0], "dropped": True}, answers=True)

    def _work(self) -> None:
        while (frame := self.slot.take()) is not None:
            frame_id, image, arrived = frame
            try:
                if isinstance(image, Exception):
                    raise image
                taken = time.perf_counter()
                self._send_depth(frame_id, self.engine.depth(image), arrived, taken)
            except LookupError as err:  # the models are still loading: the page waits and sends again
                self._send_json({"id": frame_id, "retry": True, "error": str(err)}, answers=True)
            except FrameError as err:
                self._send_json({"id": frame_id, "error": str(err)}, answers=True)
            except OSError:
                return
            except Exception as err:  # a model that fails on a frame: say so on the page, keep streaming
                self._send_json({"id": frame_id, "error": f"{type(err).__name__}: {err}"}, answers=True)

    def _send_depth(self, frame_id: int, depths, arrived: float, taken: float) -> None:
        header = {"id": frame_id, "frame": self.engine.frames, "server_ms": 1e3 * (time.perf_counter() - arrived),
                  "wait_ms": 1e3 * (taken - arrived),  # in the slot, behind the frame before it
                  "panels": [{"role": d.role, "model": d.model, "model_ms": d.model_ms, "height": d.levels.shape[0],
                              "width": d.levels.shape[1], "output_space": d.output_space} for d in depths]}
        text = json.dumps(header).encode()
        payload = b"".join([struct.pack("<I", len(text)), text, *(np.ascontiguousarray(d.levels).tobytes()
                                                                   for d in depths)])
        self._send(BytesMessage(data=payload), answers=True)

    def _send_json(self, payload: dict, answers: bool = False) -> None:
        self._send(TextMessage(data=json.dumps(payload)), answers)

    def _send(self, event, answers: bool = False) -> None:
        """Send `event`; `answers`: it is the reply to one received frame."""
        with self.send_lock:
            self.unanswered -= answers
            if self.connection.state is not ConnectionState.OPEN and not isinstance(event, CloseConnection):
                raise ConnectionError("the stream is closed")  # a reply finished after the page left
            self.socket.sendall(self.connection.send(event))

    def _close(self, code: int, reason: str) -> None:
        try:
            self._send(CloseConnection(code=code, reason=reason))
        except (OSError, LocalProtocolError):
            pass


def parse_frame(message: bytes) -> tuple[int, np.ndarray]:
    """(frame id, (H, W, 3) uint8 RGB view) of a page -> server frame message, or a `FrameError` saying why not."""
    if len(message) < FRAME_HEADER.size:
        raise FrameError(f"a frame message of {len(message)} bytes has no header: reload the page")
    frame_id, height, width = FRAME_HEADER.unpack_from(message)
    expected = FRAME_HEADER.size + height * width * 4
    if not height or not width or len(message) != expected:
        raise FrameError(f"frame {frame_id}: {len(message)} bytes for {height}x{width} RGBA "
                         f"(expected {expected}): reload the page")
    pixels = np.frombuffer(message, np.uint8, offset=FRAME_HEADER.size).reshape(height, width, 4)
    return frame_id, pixels[..., :3]

"""Video frames in and out for `kdcache infer` (recorded-feed demos) and the `video:` split.

Two backends: animated GIF through Pillow (always available), and every ffmpeg format (.mp4, .avi, .mov,
.mkv, .webm) through `imageio` + `imageio-ffmpeg`, which ships its own ffmpeg binary (`pip install imageio
imageio-ffmpeg`). A missing backend is a one-line error naming that command.

Frame numbers: frame j of a file is the j-th frame ffmpeg decodes from its start, every decoded frame once
(`-fps_mode passthrough`: no frame duplicated or dropped to reach a constant rate). `probe_video` counts them with
one decode pass (no pixel conversion); `FrameCursor` reads them by number, decoding forward only, so the same
number gives the same pixels whatever the order of access. A truncated file has fewer decodable frames than its
header announces: `VideoProbe.lost` counts the rest.
"""

from __future__ import annotations

import re
import subprocess
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from kdcache.atomic import replacing
from kdcache.errors import BadSampleError, KdcacheError

FFMPEG_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})
# The first video stream, every decoded frame exactly once: what a frame number counts (module docstring).
EVERY_FRAME = ["-map", "0:v:0", "-fps_mode", "passthrough"]


def is_video(path: Path) -> bool:
    """Video containers by extension; a GIF only when it has more than one frame."""
    suffix = path.suffix.lower()
    if suffix == ".gif":
        try:
            with Image.open(path) as image:
                return getattr(image, "n_frames", 1) > 1
        except OSError:
            return False
    return suffix in FFMPEG_EXTENSIONS


def _imageio():
    try:
        import imageio.v2 as imageio  # noqa: F401
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise KdcacheError("reading/writing .mp4 and other ffmpeg videos needs imageio + imageio-ffmpeg: "
                           "pip install imageio imageio-ffmpeg (or use an animated .gif)") from None
    return imageio


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames; a truncated ffmpeg video ends after its last decodable frame."""
    if path.suffix.lower() == ".gif":
        yield from _gif_frames(path)
        return
    yield from decode_frames(path)


def _gif_frames(path: Path) -> Iterator[np.ndarray]:
    """A GIF cut short ends after its last whole frame, like an ffmpeg video; one with no readable frame is a
    bad sample naming the file (Pillow's reason, never a traceback)."""
    count = 0
    try:
        with Image.open(path) as image:
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                frame = np.asarray(image.convert("RGB"))
                count += 1
                yield frame
    except (OSError, EOFError, ValueError) as err:
        if not count:
            raise BadSampleError(path, f"cannot decode GIF (Pillow: {err}); re-encode it") from None


@dataclass(frozen=True)
class VideoProbe:
    """What one decode pass learns about a video file."""

    frames: int  # decodable frames
    fps: float  # the stream's declared rate (25 when it declares none)
    declared: int | None  # frames the header announces (duration x rate); None when it gives no duration
    reason: str = ""  # ffmpeg's last words when no frame decodes

    @property
    def lost(self) -> int:
        """Announced frames that do not decode (a truncated or damaged file)."""
        return max(0, self.declared - self.frames) if self.declared else 0


def _ffmpeg_exe() -> str:
    _imageio()  # the one-line error when imageio-ffmpeg is missing
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe_video(path: Path) -> VideoProbe:
    """Frames and rate of a video. ffmpeg formats: every frame is decoded once into ffmpeg's null output (no
    conversion, nothing piped back) and counted.

    Why decode rather than read the container's frame count: a truncated file's header still announces every
    frame, and its packet count includes packets that no longer decode; only a decode pass gives the number of
    frames `FrameCursor` will actually deliver, which the split's length must equal before anything is read.
    """
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as image:
                duration = image.info.get("duration") or 100
        except (OSError, ValueError) as err:
            raise BadSampleError(path, f"cannot decode GIF (Pillow: {err}); re-encode it") from None
        frames = sum(1 for _ in _gif_frames(path))  # a GIF cut short announces no count to compare with
        return VideoProbe(frames, 1000.0 / float(duration), frames)
    command = [_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path), *EVERY_FRAME, "-f", "null", "-"]
    log = subprocess.run(command, capture_output=True, text=True, errors="replace").stderr.replace("\r", "\n")
    counts = re.findall(r"^frame=\s*(\d+)", log, flags=re.M)
    fps = re.search(r"Stream #.*Video:.*?, (\d+(?:\.\d+)?) (?:fps|tbr)", log)
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", log)
    rate = float(fps.group(1)) if fps else 25.0
    seconds = sum(float(v) * unit for v, unit in zip(duration.groups(), (3600, 60, 1))) if duration else None
    frames = int(counts[-1]) if counts else 0
    return VideoProbe(frames, rate, round(seconds * rate) if seconds else None, "" if frames else _failure(log))


def _failure(log: str) -> str:
    """ffmpeg's last complaint, without its `[h264 @ 0x...]` prefix ("Conversion failed!" says nothing)."""
    complaints = [re.sub(r"^\[[^]]*\]\s*", "", line).strip() for line in log.splitlines()
                  if re.search(r"error|invalid|no such|not found|could not|does not contain|partial file", line, re.I)]
    return complaints[-1] if complaints else "no decodable video stream"


def decode_frames(path: Path) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of an ffmpeg video, every decoded frame once, until the last decodable one."""
    _imageio()
    import imageio_ffmpeg

    frames = imageio_ffmpeg.read_frames(str(path), input_params=["-nostdin"], output_params=EVERY_FRAME)
    try:
        width, height = next(frames)["size"]
        for buffer in frames:
            yield np.frombuffer(buffer, np.uint8).reshape(height, width, 3)
    except (OSError, RuntimeError) as err:  # no header at all, or a last frame cut short: the frames so far stand
        if "Could not load meta" in str(err) or "not found" in str(err):
            raise BadSampleError(path, f"cannot decode video: {str(err).splitlines()[-1]}; re-encode it "
                                       "(e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)") from None
    finally:
        frames.close()


class FrameCursor:
    """One video's frames by number, decoding forward only (module docstring): the next number continues the
    open decoder, a later one decodes and drops the frames between, an earlier one reopens the file.

    Deterministic by construction: ffmpeg's seeking lands on timestamps, not frame numbers, and would make a
    frame's pixels depend on where a reader started. A shard-aligned loader asks each worker for increasing
    numbers, so every worker decodes each file at most once.
    """

    def __init__(self, path: Path):
        self.path, self.next = path, 0
        self._frames: Iterator[np.ndarray] | None = None

    def frame(self, number: int) -> np.ndarray | None:
        """Frame `number`, or None when the file ends before it."""
        if self._frames is None or number < self.next:
            self.close()
            self._frames, self.next = decode_frames(self.path), 0
        frame = None
        while self.next <= number:
            frame = next(self._frames, None)
            if frame is None:
                self.close()
                return None
            self.next += 1
        return frame

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()  # stops ffmpeg
        self._frames = None


class _Discarded(Exception):
    """Raised through a `VideoWriter`'s output to drop its temp file."""


class VideoWriter:
    """Collects frames into `path` through a temp file renamed into place on `close()` (never half a video)."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self._output = ExitStack()
        self.tmp = self._output.enter_context(replacing(path))  # keeps the extension ffmpeg picks the container by
        self.frames: list[Image.Image] = []
        self.writer = None
        if path.suffix.lower() != ".gif":
            # yuv420p/libx264 want even sizes: `append` pads odd frames by one black pixel instead of resizing.
            self.writer = _imageio().get_writer(str(self.tmp), format="FFMPEG", mode="I", fps=fps,
                                                codec="libx264", quality=8, macro_block_size=1)

    def append(self, frame: np.ndarray) -> None:
        if self.writer is None:
            self.frames.append(Image.fromarray(frame))
        else:
            pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
            self.writer.append_data(np.pad(frame, pad) if any(p[1] for p in pad) else frame)

    def close(self) -> None:
        """Finish the file and rename it into place; if finishing fails, the temp file is deleted."""
        with self._output:
            if self.writer is not None:
                self.writer.close()
            elif self.frames:
                duration = int(round(1000.0 / self.fps))
                self.frames[0].save(self.tmp, save_all=True, append_images=self.frames[1:], duration=duration, loop=0)

    def discard(self) -> None:
        """Give up (the input failed mid-way): the temp file is deleted and nothing appears at `path`."""
        with suppress(_Discarded), self._output:
            if self.writer is not None:
                with suppress(Exception):  # ffmpeg may object to a video with no frames; it is deleted anyway
                    self.writer.close()
            raise _Discarded  # through `replacing`, which deletes the temp file instead of renaming it

"""Video frames in and out for `kdcache infer` (recorded-feed demos).

Two backends: animated GIF through Pillow (always available), and every ffmpeg format (.mp4, .avi, .mov,
.mkv, .webm) through `imageio` + `imageio-ffmpeg`, which ships its own ffmpeg binary (`pip install imageio
imageio-ffmpeg`). A missing backend is a one-line error naming that command.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from kdcache.atomic import replacing
from kdcache.errors import KdcacheError

FFMPEG_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


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


@contextmanager
def _decoding(path: Path, decoder: str) -> Iterator[None]:
    """A file its decoder cannot read (truncated, damaged, not a video) is one line naming the file and the
    decoder's reason (its last line: ffmpeg prints its whole banner first), never the output folder."""
    try:
        yield
    except (OSError, EOFError, RuntimeError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = lines[-1] if lines else type(err).__name__
        raise KdcacheError(f"cannot read video {path} ({decoder}: {reason}): it is truncated or damaged; re-encode "
                           f"it (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4) or leave it out") from None


@contextmanager
def _ffmpeg_reader(path: Path) -> Iterator:
    imageio = _imageio()
    with _decoding(path, "ffmpeg"):
        reader = imageio.get_reader(str(path), "ffmpeg")
        try:
            yield reader
        finally:
            reader.close()


@contextmanager
def _gif(path: Path) -> Iterator[Image.Image]:
    with _decoding(path, "Pillow"), Image.open(path) as image:
        yield image


def video_fps(path: Path) -> float:
    """Frames per second declared by the file (GIF: from its frame durations)."""
    if path.suffix.lower() == ".gif":
        with _gif(path) as image:
            duration = image.info.get("duration") or 100
        return 1000.0 / float(duration)
    with _ffmpeg_reader(path) as reader:
        return float(reader.get_meta_data().get("fps") or 25.0)


def count_frames(path: Path) -> int | None:
    if path.suffix.lower() == ".gif":
        with _gif(path) as image:
            return getattr(image, "n_frames", 1)
    with _ffmpeg_reader(path) as reader:
        try:
            frames = reader.count_frames()
        except Exception:  # some containers do not know their length; the progress bar then has no total
            return None
        return int(frames) if frames and frames > 0 else None


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames."""
    if path.suffix.lower() == ".gif":
        with _gif(path) as image:
            for index in range(getattr(image, "n_frames", 1)):
                image.seek(index)
                yield np.asarray(image.convert("RGB"))
        return
    with _ffmpeg_reader(path) as reader:
        for frame in reader:
            yield np.asarray(frame)[..., :3]


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

    def discard(self) -> None:
        """Give up (the input broke off mid-way): the temp file is deleted and nothing appears at `path`."""
        with suppress(_Discarded), self._output:
            if self.writer is not None:
                with suppress(Exception):  # ffmpeg may object to a video with no frames; it is deleted anyway
                    self.writer.close()
            raise _Discarded  # through `replacing`, which deletes the temp file instead of renaming it

    def close(self) -> None:
        """Finish the file and rename it into place; if finishing fails, the temp file is deleted."""
        with self._output:
            if self.writer is not None:
                self.writer.close()
            elif self.frames:
                duration = int(round(1000.0 / self.fps))
                self.frames[0].save(self.tmp, save_all=True, append_images=self.frames[1:], duration=duration, loop=0)

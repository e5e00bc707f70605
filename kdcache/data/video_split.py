"""`video:PATH`: the frames of one video file, or of every video under a folder (recursive), unlabeled.

Robot logs, dash-cams and phone clips as auxiliary data for distillation. Files are matched by extension (mp4,
avi, mov, mkv, webm, m4v; any case), sorted by relative path and decoded with the ffmpeg that imageio-ffmpeg ships
(`kdcache.video`). Reader options (`--split-option`): `fps=F` keeps the frames nearest to F per second, `stride=N`
every N-th frame; by default every frame.

Length before reading: opening the split decodes every file once without converting pixels (`probe_video`, a few
files at a time), since only a decode pass knows how many frames a damaged file still yields. A file that yields
none is skipped with its reason (`strict=True` raises instead); a truncated file keeps its readable frames and
one line reports how many it lost.

Sample ids are `<relative path>#<frame>@<seconds>s` (frame = the frame's number in the file, seconds = frame /
the file's declared rate), e.g. `clips/a.mp4#12@0.480s`: the same frame has the same id whatever `fps` or
`stride` pick, and a resumed or `--shard i/N` run reads the same pixels for it (`FrameCursor` decodes forward
only, and keeps its decoder open per process, so shard-aligned workers decode each file at most once).
"""

from __future__ import annotations

import bisect
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterator

from kdcache.console import log, progress
from kdcache.data.folder import find_files, under_root
from kdcache.data.sample import Sample
from kdcache.data.splits import iter_samples, register_split
from kdcache.errors import BadSampleError, KdcacheError
from kdcache.video import FFMPEG_EXTENSIONS, FrameCursor, VideoProbe, probe_video

_LOGGED = 10  # individual files reported before only the totals are


def frame_numbers(count: int, rate: float, fps: float | None = None, stride: int | None = None) -> list[int]:
    """The frames of a `count`-frame file at `rate` fps that a split keeps: every `stride`-th, or the nearest to
    `fps` per second (every frame when `fps` is at least the file's rate)."""
    if stride is not None:
        return list(range(0, count, stride))
    if fps is None or fps >= rate:
        return list(range(count))
    step = rate / fps
    nearest = (math.floor(k * step + 0.5) for k in range(math.ceil(count / step) + 1))
    return [number for number in nearest if number < count]


def _check_rate(fps: Any, stride: Any) -> tuple[float | None, int | None]:
    if fps is not None and stride is not None:
        raise KdcacheError("video: give --split-option fps=F or stride=N, not both")
    if fps is not None and (isinstance(fps, str) or not fps > 0):
        raise KdcacheError(f"bad --split-option fps={fps}: give frames per second > 0, e.g. fps=5")
    if stride is not None and (not isinstance(stride, int) or stride < 1):
        raise KdcacheError(f"bad --split-option stride={stride}: give a whole number >= 1, e.g. stride=10")
    return (float(fps) if fps is not None else None), stride


@dataclass
class VideoFile:
    path: Path
    id: str  # relative path
    rate: float
    frames: list[int]  # the frame numbers the split keeps


class VideoSplit:
    """Frames of the videos at a path, in file then frame order; `skipped` lists files with no readable frame."""

    labeled = False
    space = None

    def __init__(self, target: Path, fps: float | None = None, stride: int | None = None, strict: bool = False):
        self.target, self.strict = target, strict
        self.name = f"video:{target}"
        self.skipped: list[BadSampleError] = []
        base = target.parent if target.is_file() else target
        paths = [target] if target.is_file() else find_files(target, FFMPEG_EXTENSIONS)
        self.videos = [VideoFile(path, path.relative_to(base).as_posix(), probe.fps,
                                 frame_numbers(probe.frames, probe.fps, fps, stride))
                       for path, probe in self._probe(paths)]
        if not self.videos:
            raise KdcacheError(f"no readable video at {target} ({len(paths)} files with a video extension "
                               f"{', '.join(sorted(FFMPEG_EXTENSIONS))}): point video: at a video or a folder of them")
        self.ends = list(accumulate(len(video.frames) for video in self.videos))
        self._cursor: FrameCursor | None = None

    def _probe(self, paths: list[Path]) -> list[tuple[Path, VideoProbe]]:
        readable, damaged = [], []
        # ffmpeg runs as its own process: a few files decode at once.
        with progress(unit="video", transient=True) as bar, ThreadPoolExecutor(4) as pool:
            task = bar.add_task(f"counting frames in {self.target.name}", total=len(paths))
            for path, probe in zip(paths, pool.map(probe_video, paths)):
                bar.advance(task)
                if not probe.frames:
                    self._skip(BadSampleError(path, f"no frame decodes ({probe.reason})"))
                    continue
                if probe.lost:
                    damaged.append(path)
                    if len(damaged) <= _LOGGED:
                        log(f"{path}: {probe.lost} of its {probe.declared} frames do not decode (truncated or "
                            f"damaged file); keeping the {probe.frames} that do")
                readable.append((path, probe))
        if self.skipped:
            log(f"{self.name}: skipped {len(self.skipped)} of {len(paths)} videos that cannot be read "
                f"(pass --strict, or strict=True in Python, to stop on them instead)")
        if len(damaged) > _LOGGED:
            log(f"{self.name}: {len(damaged)} videos lose frames that do not decode")
        return readable

    def _skip(self, err: BadSampleError) -> None:
        if self.strict:
            raise err
        self.skipped.append(err)
        if len(self.skipped) <= _LOGGED:
            log(f"skipping {err.path}: {err.reason}")

    @property
    def ids(self) -> list[str]:
        return [self._id(video, frame) for video in self.videos for frame in video.frames]

    @staticmethod
    def _id(video: VideoFile, frame: int) -> str:
        return f"{video.id}#{frame}@{frame / video.rate:.3f}s"

    def __len__(self) -> int:
        return self.ends[-1]

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        position = bisect.bisect_right(self.ends, index)
        video = self.videos[position]
        frame = video.frames[index - (self.ends[position - 1] if position else 0)]
        if self._cursor is None or self._cursor.path != video.path:
            self._close()
            self._cursor = FrameCursor(video.path)
        image = self._cursor.frame(frame)
        if image is None:  # the file changed since the split was opened
            raise BadSampleError(video.path, f"frame {frame} no longer decodes; the file changed since it was counted")
        meta = {"dataset": "video", "source": str(video.path), "frame": frame, "time": frame / video.rate}
        return Sample(self._id(video, frame), image, meta=meta)

    def __iter__(self) -> Iterator[Sample]:
        return iter_samples(self, skipped=self.skipped)

    def _close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
        self._cursor = None

    def __getstate__(self) -> dict:
        # DataLoader workers each open their own decoder; an open ffmpeg process does not travel.
        return {**self.__dict__, "_cursor": None}


@register_split("video:", labeled=False, space=None)
def video(path_text: str, root: Path, fps: float | None = None, stride: int | None = None, strict: bool = False,
          **_: Any) -> VideoSplit:
    """The frames of a video file or of every video under a folder, unlabeled; fps=F or stride=N thin them."""
    target = under_root(path_text, root)
    if not target.exists():
        raise KdcacheError(f"video split path '{path_text}' does not exist: give a video file or a folder of "
                           f"videos, e.g. video:/data/drive.mp4 (absolute, or relative to the current directory "
                           f"or data root)")
    fps, stride = _check_rate(fps, stride)
    return VideoSplit(target, fps=fps, stride=stride, strict=strict)

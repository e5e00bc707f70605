"""Video decoding speed behind the `video:` split: frames/s of the counting pass (`probe_video`: decode to
ffmpeg's null output), of imageio-ffmpeg's rgb24 pipe (`decode_frames`, what the split reads with), of PyAV's
decoder to RGB arrays (when `av` is installed; the alternative the split could use), and of the split itself read
in order once opened (the cursor and `Sample` on top of the pipe; opening is the counting pass).

The clip: H.264 (x264, GOP 250, the encoder's default) of a textured scene panning a few pixels per frame, so the
decoder does real work. Rounds are interleaved; the figures are the median frames/s and the spread over rounds.

    python bench/video_decode.py [--frames 300] [--size 480x640] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from kdcache.sizes import parse_hw  # noqa: E402
from kdcache.timing import print_load  # noqa: E402
from kdcache.video import decode_frames, probe_video  # noqa: E402


def write_clip(path: Path, frames: int, height: int, width: int) -> Path:
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    scene = (rng.random((height // 8 + 1, 2 * width // 8 + 1, 3)) * 255).astype(np.uint8)
    scene = np.kron(scene, np.ones((8, 8, 1), np.uint8))  # blocks the encoder has to move, not noise
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=30, codec="libx264", quality=7,
                                         macro_block_size=1)
    writer.send(None)
    for index in range(frames):
        offset = (3 * index) % width
        writer.send(np.ascontiguousarray(scene[:height, offset:offset + width]))
    writer.close()
    return path


def pyav_frames(path: Path):
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def split_frames(split):
    for index in range(len(split)):
        yield split[index].image


def timed(count) -> float:
    start = time.perf_counter()
    frames = count()
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="480x640")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    height, width = parse_hw(args.size, "--size")
    ways = {"probe_video (count)": lambda p: probe_video(p).frames,
            "decode_frames (imageio-ffmpeg rgb24)": lambda p: sum(1 for _ in decode_frames(p)),
            "video: split read in order (once opened)": lambda split: sum(1 for _ in split_frames(split))}
    try:
        import av  # noqa: F401

        ways["PyAV to_ndarray(rgb24)"] = lambda p: sum(1 for _ in pyav_frames(p))
    except ImportError:
        print("PyAV not installed: pip install av to compare it")
    with tempfile.TemporaryDirectory() as work:
        clip = write_clip(Path(work) / "clip.mp4", args.frames, height, width)
        from kdcache.data import open_split

        rates: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                source = open_split(f"video:{clip}") if name.startswith("video:") else clip
                rates[name].append(timed(lambda: way(source)))
    print(f"{args.frames} frames {height}x{width} H.264, {args.rounds} interleaved rounds: median frames/s "
          f"(min-max)")
    for name, values in rates.items():
        print(f"  {name:40s} {statistics.median(values):8.0f}  ({min(values):.0f}-{max(values):.0f})")
    print_load()  # the machine load the figures above were timed at (kdcache.timing)


if __name__ == "__main__":
    main()

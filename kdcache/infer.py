"""`infer`: depth for images, folders and videos with any student, teacher or exported ONNX model.

Outputs per image (`formats`): `color` -> `<stem>_depth.png` (colormapped, near = bright), `side` ->
`<stem>_side.png` (RGB | depth | colour bar), `png16` -> `<stem>_depth16.png` (uint16 millimetres, 0..65.535 m,
the NYU / KITTI-style format; metric models only), `npy` -> `<stem>_depth.npy` (float32 metres) or
`<stem>_disparity.npy` for relative models. A video gives `<stem>_depth.<ext>` with RGB | depth | colour bar frames
at the source frame rate, and its processing speed in frames per second. Folders keep their sub-folder layout under
`out`.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kdcache.atomic import write_bytes
from kdcache.console import log, progress
from kdcache.depth_colors import (DEPTH_CMAP, colorize, display_range, range_labels, smoothed_range, to_nearness,
                                  with_legend)
from kdcache.errors import BadSampleError, KdcacheError, check_writable, writing_to
from kdcache.evaluate.predictors import Predictor, load_predictor
from kdcache.timing import machine_load
from kdcache.video import FFMPEG_EXTENSIONS, VideoWriter, is_video, probe_video, read_frames

VIDEO_RANGE_KEEP = 0.9  # weight of the previous frames' colour range in a depth video: steadier than the live page's

FORMATS = ("color", "side", "png16", "npy")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """(file, output stem relative to `out`) for every image/video named or found (recursively) in folders."""
    found = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            wanted = IMAGE_EXTENSIONS | FFMPEG_EXTENSIONS
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith("."))
            found += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        else:
            raise KdcacheError(f"input {path} does not exist: pass image files, folders or video files")
    if not found:
        raise KdcacheError("no image or video found in the inputs: pass .jpg/.png files, folders or .mp4/.gif videos")
    return found


def full_size(pred: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the model output to the input image size."""
    if pred.shape == tuple(shape):
        return pred
    tensor = torch.from_numpy(np.ascontiguousarray(pred, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0].numpy()


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    return buffer.getvalue()


def write_outputs(image: np.ndarray, pred: np.ndarray, space: str, stem: Path, formats: Sequence[str],
                  cmap: str) -> list[Path]:
    """Write the requested files for one image; returns their paths."""
    written = []
    nearness = to_nearness(pred, space)
    bounds = display_range(nearness)
    color = colorize(nearness, *bounds, cmap=cmap)
    labels = range_labels(*bounds, space)
    side = lambda: with_legend(np.concatenate([image, color], axis=1), *labels, cmap)  # noqa: E731
    files = {
        "color": (stem.with_name(stem.name + "_depth.png"), lambda: _png_bytes(color)),
        "side": (stem.with_name(stem.name + "_side.png"), lambda: _png_bytes(side())),
        "png16": (stem.with_name(stem.name + "_depth16.png"),
                  lambda: _png_bytes(np.clip(np.round(pred * 1000.0), 0, 65535).astype(np.uint16))),
        "npy": (stem.with_name(stem.name + ("_depth.npy" if space == "depth" else "_disparity.npy")),
                lambda: _npy_bytes(pred)),
    }
    for name in formats:
        path, encode = files[name]
        write_bytes(path, encode())
        written.append(path)
    return written


def _check_formats(formats: Sequence[str], space: str) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise KdcacheError(f"unknown output format(s) {', '.join(unknown) or 'none given'}: use {', '.join(FORMATS)}")
    if "png16" in formats and space != "depth":
        raise KdcacheError("png16 stores millimetres but this model predicts relative disparity: use --format npy")


def _infer_video(predictor: Predictor, path: Path, stem: Path, out: Path, cmap: str, flip_tta: bool, bar) -> dict:
    """Depth video of `path`; a file with no decodable frame raises `BadSampleError`, a truncated one gives the
    frames that decode and says in one line how many did not."""
    probe = probe_video(path)
    if not probe.frames:
        raise BadSampleError(path, f"no frame decodes ({probe.reason})")
    if probe.lost:
        log(f"[yellow]{path}:[/] {probe.lost} of its {probe.declared} frames do not decode (truncated or damaged "
            f"file); the depth video has the {probe.frames} that do")
    target = out / stem.with_name(stem.name + "_depth" + path.suffix.lower())
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = VideoWriter(target, probe.fps)
    task = bar.add_task(f"video {path.name}", total=probe.frames)
    frames, model_seconds, start, window = 0, 0.0, time.perf_counter(), None
    try:
        for frame in read_frames(path):
            tick = time.perf_counter()
            pred = full_size(predictor.predict(frame, flip_tta=flip_tta), frame.shape[:2])
            model_seconds += time.perf_counter() - tick
            nearness = to_nearness(pred, predictor.output_space)
            window = smoothed_range(window, nearness, keep=VIDEO_RANGE_KEEP)
            side = np.concatenate([frame, colorize(nearness, *window, cmap=cmap)], axis=1)
            writer.append(with_legend(side, *range_labels(*window, predictor.output_space), cmap))
            frames += 1
            bar.advance(task)
        if not frames:
            raise KdcacheError(f"video {path} has no frames: check the file")
    except BaseException:
        writer.discard()  # an input that breaks off mid-way leaves no half depth video
        raise
    writer.close()
    total = time.perf_counter() - start
    return {"input": str(path), "output": str(target), "frames": frames, "lost_frames": probe.lost,
            "source_fps": probe.fps, "model_fps": frames / model_seconds, "pipeline_fps": frames / total}


def _note_skip(summary: dict, reason: BadSampleError) -> None:
    """Skips are logged once something is readable; if nothing is, the first is the one error line of `infer`."""
    summary["skipped"].append(str(reason))
    if summary["images"] or summary["videos"]:
        log(f"[yellow]skipped:[/] {reason}")


def _note_output(summary: dict) -> None:
    """Before the first output: the skips held back so far are logged now."""
    if not summary["images"] and not summary["videos"]:
        for reason in summary["skipped"]:
            log(f"[yellow]skipped:[/] {reason}")


def infer(model: str | Predictor, inputs: Sequence[str | os.PathLike], out: str | os.PathLike,
          formats: Sequence[str] = ("color", "side"), *, device: str = "auto", precision: str = "fp32",
          input_size: tuple[int, int] | None = None, flip_tta: bool = False, cmap: str = DEPTH_CMAP) -> dict:
    """Run `model` on images / folders / videos and write depth outputs under `out`; returns a summary dict."""
    out = Path(out).expanduser()
    check_writable(out)
    predictor = load_predictor(model, device=device, precision=precision, input_size=input_size)
    _check_formats(formats, predictor.output_space)
    items = expand_inputs(inputs)
    videos = [(p, s) for p, s in items if is_video(p)]
    images = [(p, s) for p, s in items if (p, s) not in videos]
    from kdcache.data.images import load_rgb

    summary = {"model": predictor.name, "output_space": predictor.output_space, "out": str(out), "images": 0,
               "skipped": [], "videos": []}
    model_seconds = 0.0
    # Every output is written whole (temp file + rename): after a full disk, rerunning redoes it all cleanly.
    with writing_to(out), progress(unit="img") as bar:
        task = bar.add_task("infer", total=len(images))
        for path, stem in images:
            try:
                image = load_rgb(path)
            except BadSampleError as err:
                _note_skip(summary, err)
                bar.advance(task)
                continue
            tick = time.perf_counter()
            pred = full_size(predictor.predict(image, flip_tta=flip_tta), image.shape[:2])
            model_seconds += time.perf_counter() - tick
            write_outputs(image, pred, predictor.output_space, out / stem, formats, cmap)
            _note_output(summary)
            summary["images"] += 1
            bar.advance(task)
        for path, stem in videos:
            try:
                video = _infer_video(predictor, path, stem, out, cmap, flip_tta, bar)
            except BadSampleError as err:
                _note_skip(summary, err)
                continue
            _note_output(summary)
            summary["videos"].append(video)
    if items and not summary["images"] and not summary["videos"]:
        kind = "input(s)" if videos else "image(s)"
        raise KdcacheError(f"none of the {len(items)} {kind} in the inputs could be read (first: "
                           f"{summary['skipped'][0]}): pass readable .jpg/.png images or videos")
    if summary["images"]:
        summary["images_per_s"] = summary["images"] / model_seconds
    summary["machine"] = machine_load().as_dict()  # the speeds above were timed at this load
    return summary

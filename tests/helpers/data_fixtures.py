"""Tiny on-disk datasets in the exact real formats, for kdcache's data tests (and any other test that needs them).

Every generator writes under a given root and uses values that reveal a wrong read: NYU pixel (r, c) encodes
r and c, so a transposed or reshaped read fails the comparison instead of passing by symmetry.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

NYU_SCENES = ("bathroom", "kitchen", "office", "bedroom", "living_room", "classroom")


# ---- NYU ------------------------------------------------------------------------------------------------------

def nyu_image(frame: int, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: R = r*W + c (mod 256), G = frame, B = 255 - r."""
    r, c = np.mgrid[:height, :width]
    return np.stack([(r * width + c) % 256, np.full_like(r, frame), 255 - r], axis=-1).astype(np.uint8)


def nyu_depth(frame: int, height: int, width: int) -> np.ndarray:
    """(H, W) float32 metres: frame + 0.1*r + 0.001*c, unique per pixel."""
    r, c = np.mgrid[:height, :width]
    return (1.0 + frame + 0.1 * r + 0.001 * c).astype(np.float32)


def nyu_raw_holes(height: int, width: int) -> np.ndarray:
    """Where the fixture's rawDepths is 0 (a missing measurement)."""
    r, c = np.mgrid[:height, :width]
    return (r + c) % 5 == 0


def _matlab_strings(f, name: str, texts: list[str]) -> None:
    """A 1xN MATLAB cell array of strings as v7.3 stores it: object references into '#refs#'."""
    import h5py

    refs_group = f.require_group("#refs#")
    cell = f.create_dataset(name, (1, len(texts)), dtype=h5py.ref_dtype)
    for i, text in enumerate(texts):
        chars = refs_group.create_dataset(f"{name}_{i}", data=np.array([[ord(ch)] for ch in text], dtype=np.uint16))
        cell[0, i] = chars.ref


def write_nyu_mat(path: Path, frames: int = 6, height: int = 12, width: int = 16, poison_frame: int | None = None) -> Path:
    """`nyu_depth_v2_labeled.mat` with the real axes: images (N,3,W,H) u8, depths/rawDepths (N,W,H) f32.

    `poison_frame` gets a NaN at (0, 1) and a negative value at (1, 0) in rawDepths.
    """
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    filled = np.stack([nyu_depth(i, height, width) for i in range(frames)])
    raw = np.where(nyu_raw_holes(height, width), np.float32(0), filled)
    if poison_frame is not None:
        raw[poison_frame, 0, 1], raw[poison_frame, 1, 0] = np.nan, -2.0
    images = np.stack([nyu_image(i, height, width) for i in range(frames)])
    with h5py.File(path, "w") as f:
        # MATLAB is column-major, so h5py sees every axis reversed: (N, H, W, 3) -> (N, 3, W, H).
        f.create_dataset("images", data=images.transpose(0, 3, 2, 1))
        f.create_dataset("depths", data=filled.transpose(0, 2, 1))
        f.create_dataset("rawDepths", data=raw.transpose(0, 2, 1))
        types = [NYU_SCENES[i % len(NYU_SCENES)] for i in range(frames)]
        _matlab_strings(f, "sceneTypes", types)
        _matlab_strings(f, "scenes", [f"{t}_{i:04d}" for i, t in enumerate(types)])
    return path


def write_splits_mat(path: Path, train: list[int], test: list[int]) -> Path:
    """`splits.mat` (MATLAB v5) with 1-based column vectors trainNdxs / testNdxs, as the real file has."""
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"trainNdxs": np.array(train, dtype=np.float64)[:, None],
                            "testNdxs": np.array(test, dtype=np.float64)[:, None]})
    return path


def write_nyu(root: Path, frames: int = 6, train: tuple = (1, 3, 4), test: tuple = (2, 5, 6), **kw) -> Path:
    """`<root>/nyu/` with a tiny labeled .mat and a matching splits.mat (1-based indices)."""
    write_nyu_mat(root / "nyu" / "nyu_depth_v2_labeled.mat", frames=frames, **kw)
    write_splits_mat(root / "nyu" / "splits.mat", list(train), list(test))
    return root / "nyu"


def nyu_official_rows() -> list[list[str]]:
    text = resources.files("kdcache").joinpath("resources", "nyu_test_files_with_gt.txt").read_text()
    return [line.split() for line in text.splitlines() if line.strip()]


def official_depth_mm(frame: int, height: int, width: int) -> np.ndarray:
    r, c = np.mgrid[:height, :width]
    mm = 500 + 10 * frame + 100 * r + c
    return np.where((r + c) % 4 == 0, 0, mm).astype(np.uint16)


def write_nyu_official_splits(root: Path, height: int = 6, width: int = 8) -> Path:
    """BTS `official_splits/test/<scene>/rgb_XXXXX.jpg` + `sync_depth_XXXXX.png` for all 654 listed frames."""
    folder = root / "nyu" / "official_splits" / "test"
    for rgb, depth, _ in nyu_official_rows():
        frame = int(Path(rgb).stem.split("_")[-1])
        (folder / rgb).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), frame % 256, np.uint8)).save(folder / rgb, quality=95)
        Image.fromarray(official_depth_mm(frame, height, width)).save(folder / depth)
    return folder


# ---- KITTI ----------------------------------------------------------------------------------------------------

def kitti_rows() -> list[tuple[str, str]]:
    text = resources.files("kdcache").joinpath("resources", "kitti_eigen_test_files.txt").read_text()
    return [(d, f) for d, f, gt in (line.split() for line in text.splitlines() if line.strip()) if gt == "gt"]


def kitti_gt_png(index: int, height: int, width: int) -> np.ndarray:
    r, c = np.mgrid[:height, :width]
    value = 256 * (1 + index % 50) + 16 * r + c  # depth = value / 256 metres
    return np.where(r % 2 == 0, 0, value).astype(np.uint16)  # sparse like LiDAR: even rows empty


def write_kitti(root: Path, height: int = 4, width: int = 12, focal: float = 721.5377) -> Path:
    """KITTI raw RGB + data_depth_annotated GT for the 652 Eigen test frames; drives alternate train / val."""
    kitti = root / "kitti"
    drives = sorted({d for d, _ in kitti_rows()})
    for index, (drive, frame) in enumerate(kitti_rows()):
        part = "train" if drives.index(drive) % 2 == 0 else "val"
        rgb = kitti / "raw" / drive / "image_02" / "data" / f"{frame}.png"
        gt = (kitti / "data_depth_annotated" / part / drive.split("/")[1] / "proj_depth" / "groundtruth"
              / "image_02" / f"{frame}.png")
        rgb.parent.mkdir(parents=True, exist_ok=True)
        gt.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), index % 256, np.uint8)).save(rgb)
        Image.fromarray(kitti_gt_png(index, height, width)).save(gt)
    for date in {d.split("/")[0] for d in drives}:
        (kitti / "raw" / date / "calib_cam_to_cam.txt").write_text(
            f"calib_time: 09-Jan-2012 13:57:47\nP_rect_02: {focal} 0 609.5593 44.85728 0 {focal} 172.854 0.2163791 "
            f"0 0 1 0.002745884\n")
    return kitti


# ---- HR-WSI ---------------------------------------------------------------------------------------------------

def write_hrwsi(root: Path, part: str = "val", count: int = 3, height: int = 6, width: int = 8) -> Path:
    """`hrwsi/<part>/{imgs,gts,valid_masks}` with 8-bit disparity = 10*i + r and the right half masked out."""
    folder = root / "hrwsi" / part
    for sub in ("imgs", "gts", "valid_masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    r, c = np.mgrid[:height, :width]
    for i in range(count):
        stem = f"{i:05d}"
        Image.fromarray(np.full((height, width, 3), 40 * i, np.uint8)).save(folder / "imgs" / f"{stem}.jpg")
        Image.fromarray((10 * i + r).astype(np.uint8)).save(folder / "gts" / f"{stem}.png")
        Image.fromarray(np.where(c < width // 2, 255, 0).astype(np.uint8)).save(folder / "valid_masks" / f"{stem}.png")
    return folder


def write_all(root: Path) -> Path:
    """A data root with every real dataset kdcache reads (tiny versions)."""
    write_nyu(root)
    write_kitti(root)
    for part in ("train", "val"):
        write_hrwsi(root, part)
    return root


# ---- images of every awkward kind ---------------------------------------------------------------------------

def _noise_bytes(fmt: str, size: int = 64) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def write_bad_images(folder: Path) -> dict[str, Path]:
    """Files that cannot be decoded at all, keyed by what is wrong with them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"zero_byte": folder / "empty.jpg", "truncated_jpeg": folder / "truncated.jpg",
             "truncated_png": folder / "truncated.png", "garbage": folder / "garbage.jpg",
             "text_file": folder / "notes.png"}
    files["zero_byte"].write_bytes(b"")
    # Cut halfway: the header survives, so the damage shows only when the pixels are decoded.
    jpeg, png = _noise_bytes("JPEG"), _noise_bytes("PNG")
    files["truncated_jpeg"].write_bytes(jpeg[: len(jpeg) // 2])
    files["truncated_png"].write_bytes(png[: len(png) // 2])
    files["garbage"].write_bytes(bytes(np.random.default_rng(1).integers(0, 255, 2000, dtype=np.uint8)))
    files["text_file"].write_text("this is not an image\n")
    return files


def _write_png16_rgb(path: Path, rgb: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    height, width, _ = rgb.shape
    big_endian = rgb.astype(">u2")
    scanlines = b"".join(b"\x00" + big_endian[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines))
                     + chunk(b"IEND", b""))


def write_convertible_images(folder: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Images in unusual modes, each with the (H, W, 3) uint8 RGB `load_rgb` must return for it."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    gray = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    Image.fromarray(gray, "L").save(folder / "gray.png")
    out["gray"] = (folder / "gray.png", np.repeat(gray[..., None], 3, 2))
    sixteen = (np.arange(24, dtype=np.uint16).reshape(4, 6) * 2570)  # 2570 = 10 * 257
    Image.fromarray(sixteen).save(folder / "gray16.png")
    out["gray16"] = (folder / "gray16.png", np.repeat((sixteen // 257).astype(np.uint8)[..., None], 3, 2))
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 3] = 200, 100, np.array([0, 255, 128, 255, 0, 51], np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    composite = np.round(rgba[..., :3] * (rgba[..., 3:4] / 255.0)).astype(np.uint8)
    out["rgba"] = (folder / "rgba.png", composite)
    la = np.stack([gray, np.full_like(gray, 255)], -1)
    Image.fromarray(la, "LA").save(folder / "la.png")
    out["la"] = (folder / "la.png", np.repeat(gray[..., None], 3, 2))
    palette = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    palette.save(folder / "palette.png")
    out["palette"] = (folder / "palette.png", np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [0, 255, 0]]], np.uint8))
    palette.save(folder / "palette_transparent.png", transparency=1)  # green entries fully transparent -> black
    out["palette_transparent"] = (folder / "palette_transparent.png",
                                  np.array([[[255, 0, 0], [0, 0, 0]], [[0, 0, 255], [0, 0, 0]]], np.uint8))
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=100)  # pure red in CMYK
    out["cmyk"] = (folder / "cmyk.jpg", np.tile(np.array([255, 0, 0], np.uint8), (4, 6, 1)))
    wide = (np.arange(72, dtype=np.uint16).reshape(4, 6, 3) * 900)
    _write_png16_rgb(folder / "rgb16.png", wide)
    out["rgb16"] = (folder / "rgb16.png", (wide >> 8).astype(np.uint8))
    rotated = np.zeros((4, 6, 3), np.uint8)
    rotated[0, 0] = 255  # white top-left corner, stored; EXIF 6 means "rotate 90 degrees clockwise to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rotated).save(folder / "exif_rotated.png", exif=exif.tobytes())
    out["exif_rotated"] = (folder / "exif_rotated.png", np.rot90(rotated, k=-1))
    return out


# ---- videos ---------------------------------------------------------------------------------------------------

VIDEO_CELL = 8  # frame i of a test video is black with its i-th 8x8 cell (row-major) white


def video_frame(index: int, height: int = 32, width: int = 48) -> np.ndarray:
    frame = np.zeros((height, width, 3), np.uint8)
    row, col = divmod(index, width // VIDEO_CELL)
    frame[row * VIDEO_CELL:(row + 1) * VIDEO_CELL, col * VIDEO_CELL:(col + 1) * VIDEO_CELL] = 255
    return frame


def frame_index(image: np.ndarray) -> int:
    """Which `video_frame` a decoded (lossy) frame is: its brightest cell."""
    height, width = image.shape[:2]
    cells = image.mean(axis=2).reshape(height // VIDEO_CELL, VIDEO_CELL, width // VIDEO_CELL, VIDEO_CELL)
    return int(np.argmax(cells.mean(axis=(1, 3))))


def write_video(path: Path, frames: int = 24, fps: float = 10.0, keep: float = 1.0) -> Path:
    """An H.264 .mp4 (MJPEG for .avi) of `video_frame(0..frames-1)`; `keep` < 1 truncates the file to that share
    of its bytes. The index sits at the front (faststart), so a truncated file still opens and announces every
    frame, as a recording cut off by a full disk or a dropped upload does."""
    import imageio_ffmpeg

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = dict(codec="mjpeg", quality=None) if path.suffix == ".avi" else dict(
        codec="libx264", quality=8, output_params=["-g", "4", "-movflags", "+faststart"])
    writer = imageio_ffmpeg.write_frames(str(path), (48, 32), fps=fps, macro_block_size=1, **codec)
    writer.send(None)
    for index in range(frames):
        writer.send(video_frame(index))
    writer.close()
    if keep < 1:
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])
    return path

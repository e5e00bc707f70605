"""Robust image and depth-map decoding shared by every reader.

Bad input never crashes a long run with a stack trace from deep inside Pillow: whatever can be converted
becomes RGB uint8 (or a float32 depth map), whatever cannot raises `BadSampleError(path, reason)` with a
reason a person can act on.

Conversions (what `load_rgb` does with each kind of image):
- grayscale, palette, 1-bit, CMYK, YCbCr, LAB, HSV -> RGB through Pillow's converters;
- 16/32-bit integer grayscale -> the top 8 bits (v / 257 for 16-bit), float grayscale in [0, 1] -> x 255;
  16-bit RGB -> its top 8 bits (Pillow's reader);
- images with alpha (RGBA, LA, PA, palette + transparency) are **composited on black**: a fully transparent
  pixel becomes black instead of whatever colour the encoder happened to leave behind it;
- EXIF orientation is honoured (the pixels are rotated / flipped as a viewer would show them);
- multi-frame files (GIF, TIFF) yield their first frame.

Decompression bombs: Pillow warns above `Image.MAX_IMAGE_PIXELS` and refuses above twice that; both become a
`BadSampleError`. The limit is configurable with `$KDCACHE_MAX_IMAGE_PIXELS` or `set_max_image_pixels()`,
and every loader also takes a stricter per-call `max_pixels`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kdcache.errors import BadSampleError, KdcacheError

MAX_PIXELS_ENV = "KDCACHE_MAX_IMAGE_PIXELS"

# Modes whose pixels carry transparency that must be composited rather than dropped.
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def set_max_image_pixels(limit: int | None) -> None:
    """Process-wide decompression-bomb limit in pixels (None disables the check; trusted data only)."""
    if limit is not None and limit <= 0:
        raise KdcacheError(f"bad pixel limit {limit}: give a positive number of pixels, e.g. 178956970")
    Image.MAX_IMAGE_PIXELS = limit


def _limit_from_env() -> None:
    raw = os.environ.get(MAX_PIXELS_ENV)
    if not raw:
        return
    try:
        value = int(float(raw))
    except ValueError:
        raise KdcacheError(f"${MAX_PIXELS_ENV}={raw!r} is not a number: set it to a pixel count, e.g. 200000000")
    set_max_image_pixels(value if value > 0 else None)


_limit_from_env()


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def open_image(path: str | os.PathLike, max_pixels: int | None = None, decode: bool = True) -> Image.Image:
    """Open and fully decode an image file, or raise `BadSampleError` saying why it cannot be read.

    `decode=False` stops after the header (size, mode, bomb check): a cheap probe that catches missing,
    empty, non-image and oversized files but not truncated pixel data.
    """
    path = Path(path)
    if not path.exists():
        raise BadSampleError(path, "file does not exist")
    if path.is_dir():
        raise BadSampleError(path, "is a directory, not an image file")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BadSampleError(path, f"cannot stat file ({_describe(err)})")
    if size == 0:
        raise BadSampleError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between the limit and twice the limit; treat both alike.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise BadSampleError(path, f"refused as a possible decompression bomb ({err}); if the file is trusted, "
                                   f"raise the limit with ${MAX_PIXELS_ENV}")
    except UnidentifiedImageError:
        raise BadSampleError(path, "not an image file Pillow can identify (wrong extension or corrupt header)")
    except Exception as err:  # Pillow's plugins raise many types on malformed headers
        raise BadSampleError(path, f"cannot open image ({_describe(err)})")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise BadSampleError(path, f"image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise BadSampleError(path, f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
                                   f"{max_pixels:,} pixels (a possible decompression bomb)")
    if not decode:
        return image
    try:
        image.load()
    except Exception as err:  # truncated data, bad compressed stream, unsupported sub-format
        raise BadSampleError(path, f"cannot decode image, truncated or corrupt ({_describe(err)})")
    return image


def _honour_exif(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:
        # A malformed EXIF block says nothing reliable about orientation; the pixels themselves are fine.
        return image


def _composite_on_black(image: Image.Image) -> np.ndarray:
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
    rgb = rgba[..., :3] * (rgba[..., 3:4] / 255.0)
    return np.round(rgb).astype(np.uint8)


def _wide_gray_to_uint8(image: Image.Image) -> np.ndarray:
    values = np.asarray(image)
    if values.dtype.kind == "f":
        finite = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if finite.max(initial=0.0) <= 1.0 else 1.0
        gray = np.clip(np.round(finite * scale), 0, 255).astype(np.uint8)
    else:
        wide = values.astype(np.int64)
        # 16-bit data (the usual case, also for Pillow's 32-bit "I" mode) maps 65535 -> 255.
        divisor = 257 if wide.max(initial=0) > 255 else 1
        gray = np.clip(np.round(wide / divisor), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any decoded Pillow image -> (H, W, 3) uint8 RGB following the rules in the module docstring."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        return _composite_on_black(image)
    if image.mode.startswith("I") or image.mode == "F":
        return _wide_gray_to_uint8(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def load_rgb(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read any image file as (H, W, 3) uint8 RGB, EXIF orientation applied; `BadSampleError` otherwise."""
    image = open_image(path, max_pixels)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    try:
        return to_rgb_array(_honour_exif(image))
    except BadSampleError:
        raise
    except Exception as err:
        raise BadSampleError(path, f"cannot convert image mode {image.mode} to RGB ({_describe(err)})")


def load_gray(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read a single-channel map (depth, disparity or mask PNG) with its stored integer values intact.

    A 3-channel file whose channels are identical (grayscale saved as RGB) is accepted; anything else with
    colour is refused, since its values would not be the stored measurements.
    """
    image = open_image(path, max_pixels)
    if image.mode in ("RGB", "RGBA"):
        values = np.asarray(image)[..., :3]
        if not (np.array_equal(values[..., 0], values[..., 1]) and np.array_equal(values[..., 0], values[..., 2])):
            raise BadSampleError(path, f"expected a single-channel map but got a colour {image.mode} image")
        return values[..., 0].copy()
    if image.mode in ("LA", "PA", "P", "1"):
        image = image.convert("L")
    if image.mode not in ("L", "F") and not image.mode.startswith("I"):
        raise BadSampleError(path, f"expected a single-channel map but got image mode {image.mode}")
    return np.array(image)


def load_depth_png(path: str | os.PathLike, scale: float, max_pixels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A 16-bit depth PNG (stored value = depth * scale, 0 = no measurement) -> (depth float32, valid bool).

    KITTI uses scale 256, NYU's BTS folders scale 1000 (millimetres).
    """
    raw = load_gray(path, max_pixels)
    if raw.dtype == np.uint8:
        raise BadSampleError(path, f"expected a 16-bit depth PNG (value = depth x {scale:g}) but it is 8-bit")
    depth = raw.astype(np.float32) / np.float32(scale)
    return sanitize_depth(depth, None, space="depth")


def load_mask(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """A validity mask image -> bool array, nonzero = valid."""
    return load_gray(path, max_pixels) != 0


def sanitize_depth(depth: np.ndarray, valid: np.ndarray | None, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Mark NaN, infinite and negative values invalid (and zero too for metric depth); invalid pixels become 0.

    Returns (depth float32, valid bool); `valid` given by the dataset is combined, never widened. Zeroing the
    invalid pixels keeps NaN out of any arithmetic that forgets the mask.
    """
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(depth) & ((depth > 0) if space == "depth" else (depth >= 0))
    if valid is not None:
        usable &= np.asarray(valid, dtype=bool)
    return np.where(usable, depth, np.float32(0)).astype(np.float32, copy=False), usable


def check_same_size(path: str | os.PathLike, image: np.ndarray, other: np.ndarray, what: str = "depth") -> None:
    """Refuse a sample whose RGB and GT (or mask) disagree in size instead of silently resizing one."""
    if image.shape[:2] != other.shape[:2]:
        (h, w), (gh, gw) = image.shape[:2], other.shape[:2]
        raise BadSampleError(path, f"RGB is {w}x{h} but its {what} is {gw}x{gh}; the pair does not belong together")

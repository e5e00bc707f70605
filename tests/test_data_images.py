"""Robust decoding: every awkward image either converts to exactly the right RGB or gives a clear BadSampleError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.data_fixtures import write_bad_images, write_convertible_images
from kdcache.data import images
from kdcache.data.images import (
    check_same_size,
    load_depth_png,
    load_gray,
    load_mask,
    load_rgb,
    sanitize_depth,
    set_max_image_pixels,
)
from kdcache.errors import BadSampleError, KdcacheError

CONVERTIBLE = ["gray", "gray16", "rgb16", "rgba", "la", "palette", "palette_transparent", "cmyk", "exif_rotated"]
BAD_REASONS = {
    "zero_byte": "empty file (0 bytes)",
    "truncated_jpeg": "truncated or corrupt",
    "truncated_png": "truncated or corrupt",
    "garbage": "not an image file",
    "text_file": "not an image file",
}


@pytest.fixture(scope="module")
def convertible(tmp_path_factory):
    return write_convertible_images(tmp_path_factory.mktemp("convertible"))


@pytest.mark.parametrize("kind", CONVERTIBLE)
def test_unusual_modes_convert_to_exact_rgb(convertible, kind):
    path, expected = convertible[kind]
    rgb = load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    np.testing.assert_array_equal(rgb, expected)


def test_alpha_is_composited_on_black(convertible):
    path, _ = convertible["rgba"]
    rgb = load_rgb(path)
    assert (rgb[:, 0] == 0).all()  # alpha 0 -> black, not the stored red
    assert tuple(rgb[0, 1]) == (200, 100, 0)  # alpha 255 -> unchanged


@pytest.mark.parametrize("kind", sorted(BAD_REASONS))
def test_undecodable_files_raise_bad_sample_with_reason(tmp_path, kind):
    path = write_bad_images(tmp_path)[kind]
    with pytest.raises(BadSampleError) as info:
        load_rgb(path)
    assert info.value.path == str(path)
    assert BAD_REASONS[kind] in info.value.reason
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BadSampleError, match="does not exist"):
        load_rgb(tmp_path / "nope.jpg")
    with pytest.raises(BadSampleError, match="is a directory"):
        load_rgb(tmp_path)


def _png(path, size):
    Image.new("RGB", size, (1, 2, 3)).save(path)
    return path


@pytest.mark.parametrize("side", [12, 20])  # 144 px: Pillow warns; 400 px: Pillow raises (> 2 x limit)
def test_pillow_decompression_bomb_warning_and_error_become_bad_sample(tmp_path, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = _png(tmp_path / "bomb.png", (side, side))
    with pytest.raises(BadSampleError, match="decompression bomb") as info:
        load_rgb(path)
    assert images.MAX_PIXELS_ENV in info.value.reason


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    path = _png(tmp_path / "big.png", (20, 20))
    with pytest.raises(BadSampleError, match="over the limit of 100 pixels"):
        load_rgb(path, max_pixels=100)
    set_max_image_pixels(50)
    with pytest.raises(BadSampleError, match="decompression bomb"):
        load_rgb(path)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "1000")
    images._limit_from_env()
    assert Image.MAX_IMAGE_PIXELS == 1000 and load_rgb(path).shape == (20, 20, 3)
    with pytest.raises(KdcacheError):
        set_max_image_pixels(0)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "lots")
    with pytest.raises(KdcacheError, match=images.MAX_PIXELS_ENV):
        images._limit_from_env()


def test_depth_png_scale_and_zero_invalid(tmp_path):
    stored = np.array([[0, 256, 512], [1000, 0, 65535]], np.uint16)
    Image.fromarray(stored).save(tmp_path / "d.png")
    depth, valid = load_depth_png(tmp_path / "d.png", scale=256.0)
    assert depth.dtype == np.float32 and valid.dtype == bool
    np.testing.assert_allclose(depth, stored / 256.0)
    np.testing.assert_array_equal(valid, stored > 0)


def test_depth_png_refuses_8bit_and_colour(tmp_path):
    Image.fromarray(np.ones((2, 3), np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(BadSampleError, match="16-bit"):
        load_depth_png(tmp_path / "d8.png", scale=256.0)
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[..., 0] = 9
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.raises(BadSampleError, match="single-channel"):
        load_gray(tmp_path / "c.png")


def test_gray_saved_as_rgb_is_accepted_and_masks_are_nonzero(tmp_path):
    values = np.array([[0, 7], [3, 0]], np.uint8)
    Image.fromarray(np.repeat(values[..., None], 3, 2)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_gray(tmp_path / "g.png"), values)
    np.testing.assert_array_equal(load_mask(tmp_path / "g.png"), values != 0)


def test_nan_negative_and_infinite_depth_become_invalid():
    depth = np.array([[1.0, np.nan, -2.0], [0.0, np.inf, 3.0]], np.float32)
    clean, valid = sanitize_depth(depth, None, space="depth")
    np.testing.assert_array_equal(valid, [[True, False, False], [False, False, True]])
    np.testing.assert_array_equal(clean, [[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    _, disparity_valid = sanitize_depth(depth, np.array([[False, True, True], [True, True, True]]), space="disparity")
    np.testing.assert_array_equal(disparity_valid, [[False, False, False], [True, False, True]])


def test_size_mismatch_names_both_sizes():
    with pytest.raises(BadSampleError, match="RGB is 4x3 but its depth is 5x3"):
        check_same_size("x.png", np.zeros((3, 4, 3)), np.zeros((3, 5)))

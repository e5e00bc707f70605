"""KITTI Eigen test (annotated GT in train/ or val/) and HR-WSI (disparity + valid masks)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.data_fixtures import kitti_gt_png, kitti_rows, write_hrwsi, write_kitti
from kdcache.data import open_split
from kdcache.errors import BadSampleError, KdcacheError


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    write_kitti(root, height=4, width=12)
    return root


def test_kitti_eigen_test_has_the_652_annotated_frames(kitti_root):
    ds = open_split("kitti-eigen-test", root=kitti_root)
    assert (len(ds), ds.labeled, ds.space) == (652, True, "depth")
    assert ds.ids == [f"{drive}/{frame}" for drive, frame in kitti_rows()]
    parts = {p.parts[-6] for p in ds.gt_paths}
    assert parts == {"train", "val"}  # GT is found in both halves of data_depth_annotated
    for index in (0, 651):
        sample = ds[index]
        stored = kitti_gt_png(index, 4, 12)
        np.testing.assert_allclose(sample.depth, stored / 256.0)
        np.testing.assert_array_equal(sample.valid, stored > 0)
        assert sample.image.shape == (4, 12, 3) and sample.image[0, 0, 0] == index % 256
        assert sample.meta["focal"] == pytest.approx(721.5377)


def test_kitti_missing_and_incomplete(data_root, kitti_root):
    with pytest.raises(KdcacheError, match="kitti/raw and .*data_depth_annotated.*KDCACHE_DATA"):
        open_split("kitti-eigen-test")
    drive, frame = kitti_rows()[5]
    rgb = kitti_root / "kitti" / "raw" / drive / "image_02" / "data" / f"{frame}.png"
    hidden = rgb.with_name("hidden.bin")
    rgb.rename(hidden)
    try:
        with pytest.raises(KdcacheError, match=f"incomplete: 1 of 1304 .*{frame}.png"):
            open_split("kitti-eigen-test", root=kitti_root)
    finally:
        hidden.rename(rgb)


def test_kitti_sample_problems_after_opening(kitti_root, tmp_path):
    ds = open_split("kitti-eigen-test", root=kitti_root)
    # Point samples at damaged copies rather than damaging the shared fixture.
    Image.fromarray(np.ones((4, 10), np.uint16)).save(tmp_path / "narrow.png")
    ds.gt_paths[0] = tmp_path / "narrow.png"
    with pytest.raises(BadSampleError, match="RGB is 12x4 but its depth is 10x4"):
        ds[0]
    ds.rgb_paths[1] = tmp_path / "gone.png"
    with pytest.raises(BadSampleError, match="does not exist"):
        ds[1]
    Image.fromarray(np.ones((4, 12), np.uint8)).save(tmp_path / "eight_bit.png")
    ds.gt_paths[2] = tmp_path / "eight_bit.png"
    with pytest.raises(BadSampleError, match="16-bit"):
        ds[2]


@pytest.mark.parametrize("split, part", [("hrwsi-train", "train"), ("hrwsi-val", "val")])
def test_hrwsi_disparity_and_masks(data_root, split, part):
    write_hrwsi(data_root, part, count=3, height=6, width=8)
    ds = open_split(split)
    assert (len(ds), ds.labeled, ds.space, ds.ids) == (3, True, "disparity", ["00000", "00001", "00002"])
    sample = ds[2]
    rows = np.arange(6, dtype=np.float32)[:, None]
    left = np.arange(8) < 4
    np.testing.assert_array_equal(sample.valid, np.broadcast_to(left, (6, 8)))
    np.testing.assert_array_equal(sample.depth, np.where(left, 20 + rows, 0).astype(np.float32))
    assert sample.depth.dtype == np.float32 and sample.space == "disparity"


def test_hrwsi_missing_incomplete_and_bad_mask(data_root):
    with pytest.raises(KdcacheError, match="hrwsi/val/imgs"):
        open_split("hrwsi-val")
    folder = write_hrwsi(data_root, "val", count=2)
    (folder / "valid_masks" / "00001.png").unlink()
    with pytest.raises(KdcacheError, match="incomplete: 1 of 4 .*valid_masks/00001.png"):
        open_split("hrwsi-val")
    Image.fromarray(np.ones((3, 3), np.uint8)).save(folder / "valid_masks" / "00001.png")
    with pytest.raises(BadSampleError, match="its valid mask is 3x3"):
        open_split("hrwsi-val")[1]

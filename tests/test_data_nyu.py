"""NYU Depth v2: the labeled .mat (HDF5 axes, splits, GT choice, fork safety) and the BTS official_splits folder."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from helpers.data_fixtures import (
    NYU_SCENES,
    nyu_depth,
    nyu_image,
    nyu_official_rows,
    nyu_raw_holes,
    official_depth_mm,
    write_nyu,
    write_nyu_mat,
    write_nyu_official_splits,
    write_splits_mat,
)
from kdcache.data import open_split
from kdcache.data.nyu import shipped_splits
from kdcache.errors import BadSampleError, KdcacheError

H, W = 12, 16  # not square, so a transposed read changes the shape and a reshaped read scrambles values


@pytest.fixture
def nyu_root(data_root):
    write_nyu(data_root, frames=6, train=(1, 3, 4), test=(2, 5, 6), height=H, width=W, poison_frame=4)
    return data_root


@pytest.mark.parametrize("split, frames", [("nyu-test", [1, 4, 5]), ("nyu-train", [0, 2, 3])])
def test_mat_frames_follow_splits_mat_with_exact_axes(nyu_root, split, frames):
    ds = open_split(split)
    assert (ds.name, ds.labeled, ds.space, len(ds)) == (split, True, "depth", 3)
    for index, frame in enumerate(frames):
        sample = ds[index]
        assert sample.id == f"{frame:05d}" and sample.space == "depth"
        np.testing.assert_array_equal(sample.image, nyu_image(frame, H, W))
        expected = np.where(nyu_raw_holes(H, W), 0.0, nyu_depth(frame, H, W))
        if frame == 4:  # the poisoned frame: NaN at (0, 1), negative at (1, 0)
            expected[0, 1] = expected[1, 0] = 0.0
        np.testing.assert_array_equal(sample.depth, expected.astype(np.float32))
        np.testing.assert_array_equal(sample.valid, expected > 0)
        assert sample.meta["frame_index"] == frame and sample.meta["matlab_index"] == frame + 1
        assert sample.meta["scene_type"] == NYU_SCENES[frame % len(NYU_SCENES)]
        assert sample.meta["focal"] == pytest.approx(518.8579)


@pytest.mark.parametrize("gt", ["filled", "depths"])
def test_filled_depth_option(nyu_root, gt):
    sample = open_split("nyu-test", gt=gt)[0]
    np.testing.assert_array_equal(sample.depth, nyu_depth(1, H, W))
    assert sample.valid.all() and sample.meta["gt"] == "depths"


def test_unknown_gt_option(nyu_root):
    with pytest.raises(KdcacheError, match="gt='filled'"):
        open_split("nyu-test", gt="dense")


def test_tiny_mat_without_splits_mat_refuses_the_official_indices(nyu_root):
    (nyu_root / "nyu" / "splits.mat").unlink()
    with pytest.raises(KdcacheError, match="holds 6 frames .* indexes frame 1449.*kdcache data download nyu"):
        open_split("nyu-test")


@pytest.fixture(scope="module")
def full_size_root(tmp_path_factory):
    """All 1449 frames (at 2x3 pixels) and no splits.mat: the split must come from the shipped JSON."""
    root = tmp_path_factory.mktemp("nyu1449")
    write_nyu_mat(root / "nyu" / "nyu_depth_v2_labeled.mat", frames=1449, height=2, width=3)
    return root


def test_full_size_mat_uses_the_shipped_official_split(full_size_root):
    test, train = open_split("nyu-test", root=full_size_root), open_split("nyu-train", root=full_size_root)
    assert (len(test), len(train)) == (654, 795)
    official = shipped_splits()
    assert [int(i) for i in test.ids] == list(official["test"]) and test.ids[0] == "00000"
    assert [int(i) for i in train.ids] == list(official["train"])
    np.testing.assert_array_equal(test[-1].image, nyu_image(int(official["test"][-1]), 2, 3))


@pytest.mark.parametrize("content, message", [(b"not a mat file", "not a readable MATLAB v5"), (None, "lacks trainNdxs")])
def test_bad_splits_mat(nyu_root, content, message):
    path = nyu_root / "nyu" / "splits.mat"
    if content is None:
        import scipy.io

        scipy.io.savemat(path, {"other": np.ones(3)})
    else:
        path.write_bytes(content)
    with pytest.raises(KdcacheError, match=message):
        open_split("nyu-test")


def test_split_index_zero_is_refused(nyu_root):
    write_splits_mat(nyu_root / "nyu" / "splits.mat", [0, 1], [2])
    with pytest.raises(KdcacheError, match="1-based"):
        open_split("nyu-train")


def test_bad_labeled_mat(data_root):
    mat = data_root / "nyu" / "nyu_depth_v2_labeled.mat"
    mat.parent.mkdir()
    mat.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(KdcacheError, match="not a readable HDF5"):
        open_split("nyu-test")
    import h5py

    with h5py.File(mat, "w") as f:
        f.create_dataset("images", (2, 3, 4, 5), dtype=np.uint8)
    with pytest.raises(KdcacheError, match="lacks depths, rawDepths"):
        open_split("nyu-test")
    with h5py.File(mat, "a") as f:
        f.create_dataset("depths", (2, 5, 4), dtype=np.float32)  # transposed: (N, H, W) instead of (N, W, H)
        f.create_dataset("rawDepths", (2, 5, 4), dtype=np.float32)
    with pytest.raises(KdcacheError, match="unexpected shapes"):
        open_split("nyu-test")


def test_pickled_and_forked_readers_open_their_own_handle(nyu_root):
    import torch

    ds = open_split("nyu-test")
    first = ds[0]  # the parent now holds an open HDF5 handle
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[0].image, first.image)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda s: s.depth,
                                         multiprocessing_context="fork")
    depths = list(loader)
    for index, depth in enumerate(depths):
        np.testing.assert_array_equal(depth, ds[index].depth)


def test_corrupt_frame_raises_bad_sample_naming_frame(nyu_root):
    ds = open_split("nyu-test")
    ds.frames = np.array([99])
    with pytest.raises(BadSampleError, match=r"\[frame 99\]"):
        ds[0]


# ---- BTS official_splits folder -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def official_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    write_nyu_official_splits(root, height=6, width=8)
    return root


def test_official_splits_folder_reads_all_654_in_frame_order(official_root):
    ds = open_split("nyu-test", root=official_root)
    assert len(ds) == 654 and ds.ids == sorted(ds.ids)
    rows = {int(rgb.split("_")[-1].split(".")[0]): rgb for rgb, _, _ in nyu_official_rows()}
    for index in (0, 100, 653):
        sample = ds[index]
        frame = int(sample.id)
        stored = official_depth_mm(frame, 6, 8)
        np.testing.assert_allclose(sample.depth, stored / 1000.0, rtol=1e-6)
        np.testing.assert_array_equal(sample.valid, stored > 0)
        assert sample.image.shape == (6, 8, 3) and sample.meta["scene_type"] == rows[frame].split("/")[0]


def test_official_splits_folder_gives_the_same_ids_as_the_mat(official_root, full_size_root):
    assert open_split("nyu-test", root=full_size_root).ids == open_split("nyu-test", root=official_root).ids


def test_official_splits_folder_layout_rules(official_root):
    with pytest.raises(KdcacheError, match="raw depth only"):
        open_split("nyu-test", root=official_root, gt="filled")
    with pytest.raises(KdcacheError, match="nyu_depth_v2_labeled.mat"):
        open_split("nyu-train", root=official_root)
    with pytest.raises(KdcacheError, match="unknown NYU layout"):
        open_split("nyu-test", root=official_root, layout="zip")


def test_official_splits_folder_missing_files_and_custom_list(tmp_path):
    folder = tmp_path / "nyu" / "official_splits" / "test" / "bathroom"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(folder / "rgb_00045.jpg")
    Image.fromarray(np.full((4, 6), 1500, np.uint16)).save(folder / "sync_depth_00045.png")
    with pytest.raises(KdcacheError, match="incomplete: 1306 of 1308 listed files are missing"):
        open_split("nyu-test", root=tmp_path)
    listing = tmp_path / "list.txt"
    listing.write_text("/bathroom/rgb_00045.jpg /bathroom/sync_depth_00045.png 518.8579\n")
    ds = open_split("nyu-test", root=tmp_path, list_file=listing)
    with pytest.raises(BadSampleError, match="RGB is 5x4 but its depth is 6x4"):
        ds[0]


def test_missing_nyu_names_both_layouts_and_the_download(data_root):
    with pytest.raises(KdcacheError) as info:
        open_split("nyu-test")
    message = str(info.value)
    for part in ("nyu_depth_v2_labeled.mat", "official_splits/test", "kdcache data download nyu", "KDCACHE_DATA",
                 str(data_root), "--data-root"):
        assert part in message
    assert "--root" not in message.replace("--data-root", "")  # the option is --data-root

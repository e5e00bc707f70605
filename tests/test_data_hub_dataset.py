"""`dataset:PATH`: a `datasets` dataset saved to disk or as the hub's parquet files, read back sample for sample."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from kdcache.data import open_split
from kdcache.errors import KdcacheError

datasets = pytest.importorskip("datasets")

ROWS, H, W = 5, 6, 8


def source_rows():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(ROWS)]
    depths = [rng.uniform(0.5, 9.0, (H, W)).astype(np.float32) for _ in range(ROWS)]
    depths[1][0, :3] = [np.nan, 0.0, -1.0]  # invalid pixels
    return images, depths


def millimetres(depth: np.ndarray) -> np.ndarray:
    return np.nan_to_num(depth * 1000).clip(0).astype(np.uint16)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The same rows three ways: save_to_disk, a DatasetDict, and the hub's parquet layout (train + test)."""
    folder = tmp_path_factory.mktemp("hub")
    images, depths = source_rows()
    features = datasets.Features({"rgb": datasets.Image(), "depth_map": datasets.Array2D((H, W), "float32"),
                                  "depth_mm": datasets.Image()})
    table = datasets.Dataset.from_dict({
        "rgb": [Image.fromarray(image) for image in images], "depth_map": depths,
        "depth_mm": [Image.fromarray(millimetres(depth)) for depth in depths],
    }, features=features)
    table.save_to_disk(str(folder / "saved"))
    datasets.DatasetDict({"train": table, "test": table.select([0])}).save_to_disk(str(folder / "dict"))
    (folder / "hub" / "data").mkdir(parents=True)
    table.to_parquet(str(folder / "hub" / "data" / "train-00000-of-00001.parquet"))
    table.select([0, 1]).to_parquet(str(folder / "hub" / "data" / "test-00000-of-00001.parquet"))
    return folder


@pytest.fixture(autouse=True)
def parquet_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")  # not the user's cache


def test_saved_dataset_reads_back_sample_for_sample(saved):
    images, depths = source_rows()
    split = open_split(f"dataset:{saved / 'saved'}", image="rgb", depth="depth_map")
    assert (len(split), split.labeled, split.space) == (ROWS, True, "depth")
    for index, sample in enumerate(split):
        assert sample.id == str(index) and sample.meta["row"] == index
        np.testing.assert_array_equal(sample.image, images[index])
        valid = np.isfinite(depths[index]) & (depths[index] > 0)
        np.testing.assert_array_equal(sample.valid, valid)
        np.testing.assert_array_equal(sample.depth, np.where(valid, depths[index], 0))
    window = open_split(f"dataset:{saved / 'saved'}[1:3]", image="rgb")
    assert [s.id for s in window] == ["1", "2"] and not window.labeled and window[0].depth is None


def test_hub_parquet_files_with_a_depth_scale_and_a_chosen_split(saved):
    images, depths = source_rows()
    with pytest.raises(KdcacheError, match="splits test, train: name one"):
        open_split(f"dataset:{saved / 'hub'}", image="rgb")
    split = open_split(f"dataset:{saved / 'hub' / 'data' / 'train-*.parquet'}", image="rgb", depth="depth_mm",
                       depth_scale=1000)
    assert len(split) == ROWS
    sample = split[3]
    np.testing.assert_array_equal(sample.image, images[3])
    np.testing.assert_array_equal(sample.depth, millimetres(depths[3]).astype(np.float32) / np.float32(1000))
    assert len(open_split(f"dataset:{saved / 'hub' / 'data' / 'test-00000-of-00001.parquet'}", image="rgb")) == 2


def test_disparity_space_keeps_zero_as_a_valid_value(saved):
    sample = open_split(f"dataset:{saved / 'saved'}", image="rgb", depth="depth_map", space="disparity")[1]
    assert sample.space == "disparity" and list(sample.valid[0, :3]) == [False, True, False]


@pytest.mark.parametrize("options, message", [
    ({}, "no column 'image' .*columns: rgb, depth_map, depth_mm.*--split-option image=COLUMN"),
    ({"image": "rgb", "depth": "gt"}, "no column 'gt'"),
    ({"image": "rgb", "space": "metres", "depth": "depth_map"}, "space=depth .* or space=disparity"),
    ({"image": "rgb", "depth_scale": 0, "depth": "depth_map"}, "depth_scale=0"),
    ({"image": "rgb", "depth_scale": 1000}, "name it with --split-option depth=COLUMN"),
])
def test_bad_options_are_one_line_errors(saved, options, message):
    with pytest.raises(KdcacheError, match=message):
        open_split(f"dataset:{saved / 'saved'}", **options)


def test_dataset_dict_and_other_folders_name_the_fix(saved, tmp_path):
    with pytest.raises(KdcacheError, match=r"DatasetDict with splits test, train: name one, e.g. dataset:.*dict/test"):
        open_split(f"dataset:{saved / 'dict'}")
    assert len(open_split(f"dataset:{saved / 'dict' / 'train'}", image="rgb")) == ROWS
    with pytest.raises(KdcacheError, match="neither a save_to_disk folder nor parquet files"):
        open_split(f"dataset:{tmp_path}")


def test_missing_datasets_package_names_the_extra(saved, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(KdcacheError, match=r'pip install "kdcache\[datasets\]"'):
        open_split(f"dataset:{saved / 'saved'}")


def test_precompute_records_labels_space_and_options_and_stores_the_gt(saved, tmp_path, run_cli):
    images, depths = source_rows()
    out, spec = tmp_path / "c.zarr", f"dataset:{saved / 'saved'}"
    code, _, err = run_cli("precompute", "--teacher", "none", "--split", spec, "--out", out, "--resolution", "6x8",
                           "--split-option", "image=rgb", "--split-option", "depth=depth_map",
                           "--split-option", "space=disparity", "--workers", "0")
    assert code == 0, err
    manifest = json.loads((out / "zarr.json").read_text())["attributes"]["kdcache"]
    assert manifest["split_options"] == {"image": "rgb", "depth": "depth_map", "space": "disparity"}
    assert (manifest["splits"][spec]["labeled"], manifest["splits"][spec]["space"]) == (True, "disparity")
    from kdcache.store import open_store

    stored = open_store(str(out)).split(spec).read()
    np.testing.assert_array_equal(stored["image"], np.stack(images))
    np.testing.assert_array_equal(stored["gt"][2], depths[2])


def test_a_run_mixing_dataset_and_synthetic_splits_takes_the_column_options():
    options = dict(image="rgb", depth="depth_map", space="disparity", depth_scale=1000)
    assert len(open_split("synth-aux[:1]", size=(24, 32), **options)) == 1

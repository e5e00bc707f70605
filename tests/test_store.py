"""Store: layout names, manifest comparison, reader API (read, shuffled_blocks, require), durable writes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers.precompute_fakes import RESOLUTION, FakeTeacher

from kdcache.errors import KdcacheError
from kdcache.precompute import PrecomputeConfig, precompute
from kdcache.precompute.resize import aspect_crop_box, resize_nearest
from kdcache.store import group_name, open_store
from kdcache.store import manifest as mf
from kdcache.store.backend import DurableLocalStore, local_path, remove_stale_partials


@pytest.fixture(scope="module")
def store_url(tmp_path_factory):
    url = str(tmp_path_factory.mktemp("store") / "cache.zarr")
    precompute(PrecomputeConfig(FakeTeacher(), ["kdtest-labeled", "kdtest-unlabeled"], url, resolution=RESOLUTION,
                                batch_size=2, shard_size=4, feature_layers="default"))
    return url


def test_group_names_are_sanitised_and_unique():
    assert group_name("synth-train[:16]") == "synth-train_16"
    assert group_name("folder:/data/unlabeled") == "folder_data_unlabeled"
    assert group_name("folder:/data/unlabeled", taken={"folder_data_unlabeled"}) == "folder_data_unlabeled_2"
    assert group_name("pca") == "pca_2"  # reserved for PCA bases


def _manifest(**changes):
    base = mf.build_manifest(
        teacher={"name": "t", "identity": {"sha": "1"}, "precision": "fp32", "flip_tta": False},
        resolution=(32, 48), shard_size=4,
        splits={"a": {"group": "a", "count": 10}}, features={"layers": ["x"], "grid": [4, 6], "budget_bytes": 100},
    )
    for path, value in changes.items():
        target = base
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return base


@pytest.mark.parametrize("path,value,label", [
    ("resolution", [64, 96], "resolution"),
    ("teacher.identity", {"sha": "2"}, "teacher identity"),
    ("teacher.flip_tta", True, "flip-TTA"),
    ("shard_size", 8, "shard size"),
    ("splits.a.count", 11, "split sizes"),
    ("features.grid", [8, 12], "feature grid"),
])
def test_manifest_mismatches_name_the_option(path, value, label):
    assert mf.mismatches(_manifest(), _manifest()) == []
    assert mf.mismatches(_manifest(), _manifest(resolution=(32, 48))) == []  # tuple vs JSON list
    found = mf.mismatches(_manifest(), _manifest(**{path: value}))
    assert found and found[0][0] == label  # the refusal names the first difference


def test_a_request_may_add_splits_or_name_some_but_not_resize_one():
    both = _manifest(splits={"a": {"group": "a", "count": 10}, "b": {"group": "b", "count": 3}})
    assert mf.mismatches(_manifest(), both) == [] and mf.added_splits(_manifest(), both) == ["b"]
    assert mf.mismatches(both, _manifest()) == [] and mf.added_splits(both, _manifest()) == []
    resized = _manifest(splits={"a": {"group": "a", "count": 11}, "b": {"group": "b", "count": 3}})
    assert mf.mismatches(_manifest(), resized) == [("split sizes", {"a": 10}, {"a": 11})]


def test_read_returns_every_field_with_contract_dtypes(store_url):
    split = open_store(store_url).split("kdtest-labeled")
    assert (len(split), split.labeled, split.space, split.shard_size, split.n_shards) == (20, True, "depth", 4, 5)
    data = split.read(2, 7)
    expect = {"image": (np.uint8, (5, 32, 48, 3)), "teacher": (np.float16, (5, 32, 48)), "teacher_ok": (np.bool_, (5,)),
              "gt": (np.float32, (5, 32, 48)), "valid": (np.bool_, (5, 32, 48)), "readable": (np.bool_, (5,)),
              "features/stem": (np.float16, (5, 16, 4, 6)), "features/deep": (np.float16, (5, 48, 4, 6))}
    for name, (dtype, shape) in expect.items():
        assert data[name].dtype == dtype and data[name].shape == shape, name
    assert list(data["ids"]) == [f"kdtest-labeled/{i:04d}" for i in range(2, 7)]
    assert set(split.read(0, 2, ["features"])) == {"features/stem", "features/deep"}
    with pytest.raises(KdcacheError, match="no field 'nope'"):
        split.read(0, 1, ["nope"])


def test_split_accepts_spec_or_group_and_plain_zarr_reads_it(store_url):
    store = open_store(store_url)
    assert store.split("kdtest-labeled").spec == "kdtest-labeled"
    with pytest.raises(KdcacheError, match="not in cache"):
        store.split("nyu-test")
    plain = zarr.open_group(store_url, mode="r")
    np.testing.assert_array_equal(plain["kdtest-labeled/teacher"][3], store.split("kdtest-labeled").read(3, 4)["teacher"][0])
    assert plain.attrs["kdcache"]["resolution"] == list(RESOLUTION)


def test_shuffled_blocks_cover_each_shard_once_and_split_ranks(store_url):
    split = open_store(store_url).split("kdtest-unlabeled")  # 24 samples, 6 shards
    epoch0 = split.shuffled_blocks(seed=1, epoch=0)
    assert sorted(epoch0) == [(s * 4, s * 4 + 4) for s in range(6)]
    assert epoch0 != split.shuffled_blocks(seed=1, epoch=1)
    assert epoch0 == split.shuffled_blocks(seed=1, epoch=0)
    ranks = [split.shuffled_blocks(seed=1, epoch=0, rank=r, world_size=4) for r in range(4)]
    assert {len(r) for r in ranks} == {2}  # padded to equal length
    assert set(sum(ranks, [])) == set(epoch0)
    with pytest.raises(KdcacheError):
        split.shuffled_blocks(0, 0, rank=4, world_size=4)


def test_require_refuses_each_mismatch_in_one_line(store_url):
    store = open_store(store_url)
    store.require(splits=["kdtest-labeled"], resolution=RESOLUTION, teacher_space="disparity", features=["stem"])
    cases = [
        (dict(splits=["nyu-train"]), "split 'nyu-train' is missing"),
        (dict(resolution=(240, 320)), "resolution is 32x48, asked 240x320"),
        (dict(teacher_space="depth"), "space is disparity, asked depth"),
        (dict(features=["neck_0"]), "not cached"),
        (dict(teacher="dpt-large"), "teacher is 'fake-teacher'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(KdcacheError, match=message) as info:
            store.require(**kwargs)
        assert "\n" not in str(info.value)


def test_require_refuses_an_incomplete_split(store_url, tmp_path):
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(store_url, copy)
    zarr.open_group(str(copy), mode="r+")["kdtest-labeled/shard_done"][2] = False
    with pytest.raises(KdcacheError, match=r"incomplete \(4/5 shards\)"):
        open_store(str(copy)).require(splits=["kdtest-labeled"])


def test_open_store_rejects_what_is_not_a_cache(tmp_path):
    with pytest.raises(KdcacheError, match="no cache store"):
        open_store(str(tmp_path / "missing.zarr"))
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(KdcacheError, match="not a kdcache cache"):
        open_store(str(tmp_path / "plain.zarr"))


def test_stored_split_survives_pickling_for_workers(store_url):
    split = open_store(store_url).split("kdtest-unlabeled")
    split.read(0, 1)
    clone = pickle.loads(pickle.dumps(split))
    np.testing.assert_array_equal(clone.read(4, 8)["image"], split.read(4, 8)["image"])


def test_durable_store_leaves_no_temporary_files(tmp_path):
    root = zarr.open_group(store=DurableLocalStore(tmp_path / "d.zarr"), mode="w")
    array = root.create_array("x", shape=(8, 4), chunks=(1, 4), shards=(4, 4), dtype="f4")
    array[:] = np.arange(32, dtype=np.float32).reshape(8, 4)
    assert not list((tmp_path / "d.zarr").rglob("*.partial"))
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "d.zarr"))["x"][5], [20, 21, 22, 23])
    (tmp_path / "d.zarr" / "x" / "c" / "0.deadbeef.partial").write_bytes(b"torn")
    assert remove_stale_partials(str(tmp_path / "d.zarr")) == 1


def test_local_path_understands_file_urls(tmp_path):
    assert local_path(f"file://{tmp_path}/a.zarr") == tmp_path / "a.zarr"
    assert local_path("cache/a.zarr") == Path("cache/a.zarr")
    assert local_path("s3://bucket/a.zarr") is None


def test_crop_box_and_nearest_resize_never_blend():
    assert aspect_crop_box(480, 640, (240, 320)) == (0, 0, 480, 640)
    assert aspect_crop_box(480, 1280, (240, 320)) == (0, 320, 480, 640)  # too wide: crop columns
    assert aspect_crop_box(900, 640, (240, 320)) == (210, 0, 480, 640)  # too tall: crop rows
    depth = np.random.default_rng(0).uniform(1, 10, (37, 61)).astype(np.float32)
    small = resize_nearest(depth, (16, 24))
    assert small.shape == (16, 24) and set(np.unique(small)) <= set(np.unique(depth))


def test_fast_whole_shard_reads_equal_zarr_reads_including_unwritten_chunks(store_url):
    from kdcache.store.shardread import read_shard

    split = open_store(store_url).split("kdtest-unlabeled")  # samples 3 and 17 unreadable: all-zero chunks
    sharded = [f for f in split.fields if split.array(f).shards]
    assert {"image", "teacher", "features/stem", "features/deep"} <= set(sharded)
    for field in sharded:
        for shard in range(split.n_shards):
            fast = read_shard(split.array(field), shard)
            assert fast is not None, field
            np.testing.assert_array_equal(fast, split.array(field)[shard * 4:(shard + 1) * 4], err_msg=field)
    assert not split.read(0, 4, ["teacher"])["teacher"][3].any()


def test_fast_path_declines_a_layout_it_does_not_know(tmp_path):
    from kdcache.store.shardread import read_shard

    root = zarr.open_group(str(tmp_path / "z.zarr"), mode="w")
    plain = root.create_array("x", shape=(8, 4), chunks=(1, 4), shards=(4, 4), dtype="f4")  # default zstd codec
    plain[:] = 1.0
    assert read_shard(plain, 0) is None

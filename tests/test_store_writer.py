"""The shard writer: whole shards encoded directly must be the Zarr v3 arrays zarr itself writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from kdcache.store.layout import create_split_arrays, shard_count, shard_range, split_fields
from kdcache.store.shardwrite import ShardEncoder
from kdcache.store.writer import ShardWriter

RESOLUTION, SHARD, COUNT = (12, 20), 4, 10  # 3 shards, the last one partial
FEATURES = {"neck_0": (5, 3, 4)}


def make_store(path: Path) -> zarr.Group:
    root = zarr.open_group(str(path), mode="w")
    fields = split_fields(RESOLUTION, labeled=True, has_teacher=True, feature_shapes=FEATURES)
    create_split_arrays(root, "split", COUNT, SHARD, fields)
    return root


def sample_data(rng) -> dict[str, np.ndarray]:
    height, width = RESOLUTION
    data = {
        "image": rng.integers(0, 256, (COUNT, height, width, 3), dtype=np.uint8),
        "teacher": rng.uniform(0.1, 9, (COUNT, height, width)).astype(np.float16),
        "teacher_ok": rng.random(COUNT) > 0.2,
        "features/neck_0": rng.normal(size=(COUNT, *FEATURES["neck_0"])).astype(np.float16),
        "gt": rng.uniform(0.5, 10, (COUNT, height, width)).astype(np.float32),
        "valid": rng.random((COUNT, height, width)) > 0.3,
        "ids": np.array([f"s{i}" for i in range(COUNT)]),
        "readable": np.ones(COUNT, bool),
    }
    for name in ("image", "teacher", "features/neck_0", "gt", "valid"):
        data[name][6] = 0  # an all-fill sample: zarr stores no chunk for it
    data["teacher"][3, 0, 0] = np.nan  # NaN is not the fill value
    return data


def shard_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and "/c/" in str(p) and "shard_done" not in str(p)}


def test_the_shard_writer_writes_what_zarr_writes(tmp_path):
    data = sample_data(np.random.default_rng(0))
    ours, theirs = make_store(tmp_path / "ours.zarr"), make_store(tmp_path / "theirs.zarr")
    writer = ShardWriter(str(tmp_path / "ours.zarr"), threads=3, max_pending=2)
    for shard in range(shard_count(COUNT, SHARD)):
        start, stop = shard_range(shard, COUNT, SHARD)
        # a shard arrives as the batches that made it (here: two), the last one partial
        writer.submit("split", shard, start, {name: [values[start:start + 1], values[start + 1:stop]]
                                              for name, values in data.items()})
        for name, values in data.items():
            theirs[f"split/{name}"][start:stop] = values[start:stop]
    writer.close()
    assert writer.written_shards == 3
    reread = zarr.open_group(str(tmp_path / "ours.zarr"), mode="r")
    for name, values in data.items():  # zarr reads every value back
        np.testing.assert_array_equal(reread[f"split/{name}"][...], values, err_msg=name)
    assert reread["split/shard_done"][...].all()
    ours_files, theirs_files = shard_files(tmp_path / "ours.zarr"), shard_files(tmp_path / "theirs.zarr")
    assert sorted(ours_files) == sorted(theirs_files)
    for key in theirs_files:  # and the files are byte for byte zarr's own
        assert ours_files[key] == theirs_files[key], key
    assert not list((tmp_path / "ours.zarr").rglob("*.partial"))


def test_only_the_layout_kdcache_writes_takes_the_direct_path(tmp_path):
    root = make_store(tmp_path / "s.zarr")
    assert ShardEncoder.of(root["split/image"]) is not None
    assert ShardEncoder.of(root["split/ids"]) is None  # unsharded: written through zarr
    plain = root.create_array("plain", shape=(8, 3), chunks=(2, 3), shards=(4, 3), dtype="f4")  # 2-sample chunks
    assert ShardEncoder.of(plain) is None


def test_a_failed_write_is_raised_and_the_shard_is_not_marked_done(tmp_path, monkeypatch):
    make_store(tmp_path / "s.zarr")
    data = sample_data(np.random.default_rng(1))
    writer = ShardWriter(str(tmp_path / "s.zarr"), threads=2)

    def broken(self, start, values):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ShardEncoder, "encode", broken)
    writer.submit("split", 0, 0, {name: values[:SHARD] for name, values in data.items()})
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert not zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["split/shard_done"][...].any()

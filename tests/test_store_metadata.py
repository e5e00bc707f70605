"""Tampered or odd store metadata (the manifest, an array's zarr.json) gets one line, never a traceback.

Each case edits a copy of a tiny store the way a hand edit, a bad merge or an attacker would, then runs
`kdcache cache info`, `kdcache cache verify` and `kdcache train` on it: each must exit 2 with one `error:` line
naming the store, and nothing may allocate what a number in the file asks for.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.errors import KdcacheError
from kdcache.store.schema import MAX_SAMPLES, check_manifest


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return Path(build_cache(tmp_path_factory.mktemp("cache") / "tiny.zarr", {"synth-train": 8, "synth-test": 4}))


def _edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def manifest_edit(change):
    return lambda store: _edit_json(store / "zarr.json", lambda meta: change(meta["attributes"]["kdcache"]))


def array_edit(array: str, change):
    return lambda store: _edit_json(store / "synth-train" / array / "zarr.json", change)


def train_split(manifest: dict) -> dict:
    return manifest["splits"]["synth-train"]


TAMPERED = {
    "missing resolution": manifest_edit(lambda m: m.pop("resolution")),
    "missing splits": manifest_edit(lambda m: m.pop("splits")),
    "missing count": manifest_edit(lambda m: train_split(m).pop("count")),
    "missing group": manifest_edit(lambda m: train_split(m).pop("group")),
    "group outside the store": manifest_edit(lambda m: train_split(m).update(group="../elsewhere")),
    "feature array outside the store": manifest_edit(
        lambda m: m["features"]["per_layer"]["neck.0"].update(array="../../x")),
    "count is a string": manifest_edit(lambda m: train_split(m).update(count="8")),
    "count is negative": manifest_edit(lambda m: train_split(m).update(count=-8)),
    "count is absurd": manifest_edit(lambda m: train_split(m).update(count=10**12)),
    "count edited": manifest_edit(lambda m: train_split(m).update(count=7)),  # the identity no longer matches
    "shard_size 0": manifest_edit(lambda m: m.update(shard_size=0)),
    "resolution absurd": manifest_edit(lambda m: m.update(resolution=[10**12, 48])),
    "feature channels a string": manifest_edit(lambda m: m["features"]["per_layer"]["neck.0"].update(channels="6")),
    "teacher not an object": manifest_edit(lambda m: m.update(teacher="tiny")),
    "image shape": array_edit("image", lambda meta: meta.update(shape=[8, 16, 48, 3])),
    "image shape absurd": array_edit("image", lambda meta: meta.update(shape=[10**12, 32, 48, 3])),
    "shard_done shape absurd": array_edit("shard_done", lambda meta: meta.update(shape=[10**12])),
    "teacher dtype": array_edit("teacher", lambda meta: meta.update(data_type="float32")),
    "manifest not JSON": lambda store: (store / "zarr.json").write_text("{not json"),
    "array zarr.json not JSON": lambda store: (store / "synth-train" / "image" / "zarr.json").write_text("{oops"),
    "array deleted": lambda store: shutil.rmtree(store / "synth-train" / "teacher"),
}


def command(name: str, store: Path, out: Path) -> list:
    if name == "train":
        return ["train", "--student", TINY_STUDENT["student"], "--cache", store, "--labeled", "synth-train",
                "--mode", "gt-only", "--out", out, "--steps", "1", "--batch-size", "2", "--workers", "0",
                "--no-pretrained"]
    return ["cache", name, store, *(["--sample", "0"] if name == "verify" else [])]


@pytest.mark.parametrize("which", ["info", "verify", "train"])
@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_metadata_is_one_line(pristine, tmp_path, run_cli, case, which):
    store = tmp_path / "tiny.zarr"
    shutil.copytree(pristine, store)
    TAMPERED[case](store)
    code, _, err = run_cli(*command(which, store, tmp_path / "run"))
    assert code == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: cache {store}: {store}/"), line
    assert "kdcache precompute" in line
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_the_pristine_store_passes_every_command(pristine, tmp_path, run_cli):
    for which in ("info", "verify", "train"):
        code, _, err = run_cli(*command(which, pristine, tmp_path / "run"))
        assert code == 0, err


def test_a_store_written_before_identities_keeps_working(pristine, tmp_path, run_cli):
    from kdcache.store import open_store

    store = tmp_path / "old.zarr"
    shutil.copytree(pristine, store)
    manifest_edit(lambda m: m.pop("identity"))(store)
    assert run_cli("cache", "info", store)[0] == 0
    assert "identity" not in open_store(store).manifest  # derived when asked, never written back by a reader
    assert open_store(store).identity(["synth-train"]) == open_store(pristine).identity(["synth-train"])


def test_counts_are_bounded_where_they_size_an_allocation():
    def manifest(count):
        return {"format": 1, "kdcache_version": "x", "created": "t", "resolution": [2, 2], "shard_size": 1,
                "teacher": None, "features": None,
                "splits": {"a": {"group": "a", "count": count, "labeled": False, "space": None}}}

    assert check_manifest("u", manifest(MAX_SAMPLES))
    with pytest.raises(KdcacheError, match="count = 1073741825"):
        check_manifest("u", manifest(MAX_SAMPLES + 1))


@pytest.mark.parametrize("shape", [(10**6, 10**6), (3, 5)])
def test_pca_bases_of_the_wrong_shape_are_refused_before_they_are_read(pristine, tmp_path, shape):
    import zarr

    from kdcache.precompute.store_plan import feature_plan
    from kdcache.store import open_store

    store = tmp_path / "pca.zarr"
    shutil.copytree(pristine, store)
    layer = {"pca": True, "source_channels": 12, "components": "pca/neck.0/components", "mean": "pca/neck.0/mean"}
    manifest_edit(lambda m: (m.pop("identity"), m["features"]["per_layer"]["neck.0"].update(layer)))(store)
    root = zarr.open_group(str(store), mode="r+")
    root.create_array("pca/neck.0/components", shape=shape, dtype="float32", chunks=(1, 1))
    root.create_array("pca/neck.0/mean", shape=(12,), dtype="float32")
    with pytest.raises(KdcacheError, match=rf"pca/neck.0/components/zarr.json says shape \({shape[0]}, {shape[1]}\)"):
        feature_plan(str(store), open_store(store).manifest)

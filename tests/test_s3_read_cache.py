"""Training reads from S3 (moto's server on 127.0.0.1): whole shards through a bounded local read cache keyed by
store, key, ETag and size; `kdcache train --cache s3://...` trains exactly as from the local copy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from zarr.storage import FsspecStore

from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.store import open_store
from kdcache.store.backend import use_remote
from kdcache.store.readcache import CachedReadStore, cacheable

SPLITS = {"synth-train": 24, "synth-aux": 16, "synth-test": 8}


@pytest.fixture(scope="module")
def local_cache(tmp_path_factory):
    return build_cache(tmp_path_factory.mktemp("cache") / "tiny.zarr", SPLITS)


@pytest.fixture
def s3_cache(s3_bucket, local_cache):
    import s3fs

    s3fs.S3FileSystem().put(local_cache, f"{s3_bucket}/tiny.zarr", recursive=True)
    return f"s3://{s3_bucket}/tiny.zarr"


@pytest.fixture
def gets(monkeypatch):
    """Keys of the chunk objects fetched from the bucket."""
    fetched = []
    original = FsspecStore.get

    async def counting(self, key, prototype, byte_range=None):
        if cacheable(key):
            fetched.append(key)
        return await original(self, key, prototype, byte_range)

    monkeypatch.setattr(FsspecStore, "get", counting)
    return fetched


def read_epoch(url) -> dict[str, np.ndarray]:
    split = open_store(url).split("synth-train")  # opened anew: a new process (a DataLoader worker) does the same
    blocks = [split.read(start, stop) for start, stop in split.shuffled_blocks(seed=0, epoch=0)]
    return {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}


def test_later_epochs_read_the_local_copy_and_equal_the_bucket(s3_cache, local_cache, tmp_path, gets):
    use_remote(s3_cache, {}, str(tmp_path / "reads"), 2**30)
    first = read_epoch(s3_cache)
    assert gets and len(gets) == len(set(gets))  # one GET per object
    assert isinstance(open_store(s3_cache).split("synth-train").array("image").store_path.store, CachedReadStore)
    gets.clear()
    second = read_epoch(s3_cache)
    assert gets == []
    want = read_epoch(local_cache)
    for name in want:
        np.testing.assert_array_equal(first[name], want[name], err_msg=name)
        np.testing.assert_array_equal(second[name], want[name], err_msg=name)
    assert not any(p.name.endswith("zarr.json") for p in (tmp_path / "reads").rglob("*"))  # metadata never cached


def test_an_object_replaced_in_the_bucket_is_fetched_again(s3_cache, tmp_path, gets):
    use_remote(s3_cache, {}, str(tmp_path / "reads"), 2**30)
    before = read_epoch(s3_cache)["teacher"]
    use_remote(s3_cache, {})
    zarr.open_group(s3_cache, mode="r+")["synth-train/teacher"][0:8] = 7.0  # shard 0 rewritten: a new ETag
    use_remote(s3_cache, {}, str(tmp_path / "reads"), 2**30)
    gets.clear()
    after = open_store(s3_cache).split("synth-train").read(0, 8)["teacher"]
    assert (after == 7.0).all() and not (before[:8] == 7.0).all()
    assert gets == ["synth-train/teacher/c/0/0/0"]
    copies = [p for p in (tmp_path / "reads").rglob("0@*") if "synth-train/teacher/c/0/0/0@" in p.as_posix()]
    assert len(copies) == 1  # the stale copy went


def test_the_read_cache_stays_within_its_bound(s3_cache, tmp_path):
    bound = 40_000
    use_remote(s3_cache, {}, str(tmp_path / "reads"), bound)
    read_epoch(s3_cache)
    read_epoch(s3_cache)
    stored = sum(p.stat().st_size for p in (tmp_path / "reads").rglob("*") if p.is_file())
    assert 0 < stored <= bound


@pytest.mark.slow
def test_train_from_s3_equals_train_from_the_local_copy(s3_cache, local_cache, tmp_path, run_cli):
    args = ["train", "--student", TINY_STUDENT["student"], "--labeled", "synth-train", "--aux", "synth-aux",
            "--mode", "kd-labeled-aux", "--val", "synth-test", "--epochs", "2", "--batch-size", "4",
            "--workers", "0", "--no-augment", "--no-pretrained"]
    results = {}
    for name, cache in (("local", local_cache), ("s3", s3_cache)):
        extra = ["--read-cache", tmp_path / "reads"] if name == "s3" else []
        code, out, err = run_cli(*args, "--cache", cache, "--out", tmp_path / name, *extra)
        assert code == 0, err
        results[name] = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    losses = {name: [r.get("loss") for r in records if r["kind"] == "train"] for name, records in results.items()}
    assert losses["s3"] == losses["local"] and losses["local"]
    assert list((tmp_path / "reads").rglob("*@*"))  # the shards were kept for the next epochs


@pytest.mark.slow
def test_torchrun_ddp_from_s3_equals_ddp_from_the_local_copy(s3_cache, local_cache, tmp_path):
    import os
    import subprocess
    import sys

    losses = {}
    for name, cache in (("local", local_cache), ("s3", s3_cache)):
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'cache = "{cache}"\nout = "{tmp_path / name}"\nbatch_size = 4\nepochs = 1\nworkers = 0\nlog_every = 1\n'
            f'read_cache = "{tmp_path / "reads"}"\n[sources]\nlabeled = "synth-train"\naux = "synth-aux"\n'
            f'[[variant]]\nmode = "kd-labeled-aux"\nstudent = "{TINY_STUDENT["student"]}"\n'
            f'student_overrides = {{ width = {TINY_STUDENT["student_overrides"]["width"]} }}\n'
            'pretrained = false\n')
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   "-m", "kdcache.cli.main", "train", "--config", str(config)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [r.get("loss") for r in records if r["kind"] == "train"]
    assert losses["s3"] == losses["local"] and len(losses["local"]) == 6  # 24 labeled, 2 per batch per rank
    assert list((tmp_path / "reads").rglob("*@*"))  # both ranks read through the read cache

"""`kdcache precompute` under torchrun: each process takes shards RANK/WORLD_SIZE, the store equals one run's."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import zarr

from helpers.tiny_models import make_tiny_dpt


def kdcache(*args, launcher=()) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, *launcher, "-m", "kdcache.cli.main", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def tiny_dpt_options(tmp_path) -> list[str]:
    """A tiny random-weight DPT over 24 synthetic images in 6 shards of 4, with features."""
    teacher = f"hf:{make_tiny_dpt(tmp_path / 'teacher')}"
    return ["--teacher", teacher, "--split", "synth-train[:24]", "--split-option", "size=24x32",
            "--resolution", "24x32", "--batch-size", "4", "--shard-size", "4", "--workers", "0",
            "--features", "default"]


def assert_equal_stores(got_url, want_url) -> None:
    """Every array of the store at `got_url` (a path or an s3:// URL) equals the one at `want_url`, bit for bit."""
    want, got = zarr.open_group(str(want_url), mode="r"), zarr.open_group(str(got_url), mode="r")
    group = next(iter(want.group_keys()))
    arrays = [(name, node) for name, node in want[group].members(max_depth=None) if isinstance(node, zarr.Array)]
    assert any(name.startswith("features/") for name, _ in arrays)
    for name, array in arrays:
        np.testing.assert_array_equal(got[f"{group}/{name}"][...], array[...], err_msg=name)
    assert got[f"{group}/shard_done"][...].all()


@pytest.mark.slow
def test_torchrun_two_processes_fill_one_store_like_a_single_run(tmp_path):
    options = tiny_dpt_options(tmp_path)
    single = kdcache("precompute", *options, "--out", tmp_path / "single.zarr")
    assert single.returncode == 0, single.stderr[-3000:]
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
    both = kdcache("precompute", *options, "--out", tmp_path / "torchrun.zarr", launcher=launcher)
    assert both.returncode == 0, both.stderr[-3000:]
    assert both.stderr.count("wrote 3 shards (12 samples)") == 2  # each rank wrote its half of the 6 shards
    assert_equal_stores(tmp_path / "torchrun.zarr", tmp_path / "single.zarr")

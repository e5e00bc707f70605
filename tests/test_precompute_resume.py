"""Resumability and concurrency: kill -9 then rerun, two `--shard i/N` processes, a torn shard file.

Every scenario must end with a store whose arrays equal an uninterrupted single-process run's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers.precompute_fakes import main as run_fake

from kdcache.store import open_store

TESTS = str(Path(__file__).resolve().parent)  # holds `helpers`, for the subprocesses
SPLIT = "kdtest-big"  # 40 samples, shards of 4 -> 10 shards


def spawn(out, *args) -> subprocess.Popen:
    path = os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=path)
    return subprocess.Popen([sys.executable, "-m", "helpers.precompute_fakes", str(out), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def all_arrays(url) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(url), mode="r")
    return {path: np.asarray(array[...]) for path, array in root.arrays()} | {
        f"{SPLIT}/{name}": np.asarray(array[...]) for name, array in root[SPLIT].arrays()
    } | {f"{SPLIT}/features/{name}": np.asarray(array[...]) for name, array in root[f"{SPLIT}/features"].arrays()}


def assert_same_store(url, reference) -> None:
    got, want = all_arrays(url), all_arrays(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert open_store(str(url)).completeness() == {SPLIT: (10, 10)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    url = tmp_path_factory.mktemp("ref") / "ref.zarr"
    run_fake([str(url)])
    return url


def done_shards(url) -> int:
    folder = Path(url) / SPLIT / "shard_done" / "c"
    return len([p for p in folder.iterdir() if not p.name.endswith(".partial")]) if folder.exists() else 0


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_store(tmp_path, reference):
    out = tmp_path / "killed.zarr"
    process = spawn(out, "--delay", "0.1")
    deadline = time.monotonic() + 180
    while done_shards(out) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stdout.read()
    assert 2 <= done_shards(out) < 10  # really interrupted in the middle
    run_fake([str(out)])
    assert_same_store(out, reference)
    assert not list(out.rglob("*.partial"))


def wait_for_shards(out, process, count: int = 2, done=done_shards) -> None:
    """Until `count` shards of `out` are done (`done(out)` counts them), or `process` has ended."""
    deadline = time.monotonic() + 180
    while done(out) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.slow
def test_a_second_run_on_a_store_being_written_is_refused_naming_the_first(tmp_path, reference):
    out = tmp_path / "locked.zarr"
    hold = tmp_path / "hold"
    hold.touch()
    first = spawn(out, "--hold", str(hold))  # waits in its teacher, holding the store, until `hold` goes
    deadline = time.monotonic() + 120
    while not Path(f"{hold}.started").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    seconds = [spawn(out, *args) for args in ((), ("--seed", "1"), ("--shard", "0/2"))]  # same teacher, another, a slice
    for second in seconds:
        output = second.communicate(timeout=120)[0]
        assert second.returncode == 2, output
        assert f"another kdcache precompute (pid {first.pid}" in output and "--shard i/N" in output
        assert "Traceback" not in output
    hold.unlink()
    assert first.wait(timeout=180) == 0
    assert_same_store(out, reference)  # the first run's data, unmixed


@pytest.mark.slow
def test_a_killed_runs_lock_is_taken_over(tmp_path, reference):
    out = tmp_path / "stale.zarr"
    killed = spawn(out, "--delay", "0.1")
    wait_for_shards(out, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    rerun = spawn(out)
    output = rerun.communicate(timeout=180)[0]
    assert rerun.returncode == 0, output
    assert f"taking over the lock of pid {killed.pid}" in output
    assert_same_store(out, reference)


@pytest.mark.slow
def test_two_concurrent_shard_processes_equal_one_run(tmp_path, reference):
    out = tmp_path / "sharded.zarr"
    processes = [spawn(out, "--shard", f"{i}/2", "--delay", "0.02") for i in (1, 0)]  # shard 1 starts first, waits
    for process in processes:
        output = process.communicate(timeout=120)[0]
        assert process.returncode == 0, output
    assert_same_store(out, reference)


def test_a_torn_unfinished_shard_is_rewritten(tmp_path, reference):
    import shutil

    out = tmp_path / "torn.zarr"
    shutil.copytree(reference, out)
    root = zarr.open_group(str(out), mode="r+")
    root[f"{SPLIT}/shard_done"][3] = False  # as if killed before the done flag was written
    shard_file = out / SPLIT / "teacher" / "c" / "3" / "0" / "0"
    shard_file.write_bytes(shard_file.read_bytes()[:40])  # a torn shard file
    run_fake([str(out)])
    assert_same_store(out, reference)

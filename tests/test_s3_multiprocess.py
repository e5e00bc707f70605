"""Many processes on one bucket (moto's S3 server on 127.0.0.1): torchrun ranks, kill -9 and rerun, two writers
that must not mix, and two "nodes" (`--shard 0/2`, `--shard 1/2`) followed by one training run.

Every scenario ends with a store equal to an uninterrupted local run's, as on disk (test_precompute_resume.py).
"""

from __future__ import annotations

import signal
import time

import pytest

from test_precompute_resume import SPLIT, assert_same_store, reference, spawn, wait_for_shards  # noqa: F401
from test_precompute_torchrun import assert_equal_stores, kdcache, tiny_dpt_options


def done_shards(url: str) -> int:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    folder = f"{url[len('s3://'):]}/{SPLIT}/shard_done/c"
    return len(fs.ls(folder)) if fs.exists(folder) else 0


@pytest.mark.slow
def test_torchrun_ranks_write_s3_like_a_single_local_run(tmp_path, s3_bucket):
    options = tiny_dpt_options(tmp_path)
    single = kdcache("precompute", *options, "--out", tmp_path / "single.zarr")
    assert single.returncode == 0, single.stderr[-3000:]
    url = f"s3://{s3_bucket}/torchrun.zarr"
    launcher = ("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2")
    both = kdcache("precompute", *options, "--out", url, launcher=launcher)
    assert both.returncode == 0, both.stderr[-3000:]
    assert both.stderr.count("wrote 3 shards (12 samples)") == 2  # each rank wrote its half of the 6 shards
    assert_equal_stores(url, tmp_path / "single.zarr")


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_and_takes_the_lease_over(s3_bucket, reference):
    url = f"s3://{s3_bucket}/killed.zarr"
    killed = spawn(url, "--delay", "0.1")
    wait_for_shards(url, killed, done=done_shards)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stdout.read()
    assert 2 <= done_shards(url) < 10  # really interrupted in the middle
    rerun = spawn(url)
    output = rerun.communicate(timeout=180)[0]
    assert rerun.returncode == 0, output
    assert f"taking over the lock of pid {killed.pid}" in output  # its holder is dead on this machine: at once
    assert_same_store(url, reference)


@pytest.mark.slow
def test_a_second_writer_with_another_teacher_is_refused_and_never_mixes(tmp_path, s3_bucket, reference):
    url = f"s3://{s3_bucket}/locked.zarr"
    hold = tmp_path / "hold"
    hold.touch()
    first = spawn(url, "--hold", str(hold))  # waits in its teacher, holding the store, until `hold` goes
    deadline = time.monotonic() + 120
    while not (tmp_path / "hold.started").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    for args in (("--seed", "1"), ("--shard", "0/2")):  # another teacher; a slice beside the whole run
        second = spawn(url, *args)
        output = second.communicate(timeout=120)[0]
        assert second.returncode == 2, output
        assert f"another kdcache precompute (pid {first.pid}" in output and "--shard i/N" in output
        assert "Traceback" not in output and len(output.strip().splitlines()) == 1
    hold.unlink()
    assert first.wait(timeout=180) == 0
    assert_same_store(url, reference)  # the first run's data, unmixed


@pytest.mark.slow
def test_two_nodes_fill_one_bucket_then_one_run_trains_from_it(tmp_path, s3_bucket, reference, run_cli):
    url = f"s3://{s3_bucket}/nodes.zarr"
    nodes = [spawn(url, "--shard", f"{i}/2", "--delay", "0.02") for i in (1, 0)]  # node 1 starts first, waits
    for node in nodes:
        output = node.communicate(timeout=180)[0]
        assert node.returncode == 0, output
    assert_same_store(url, reference)
    code, out, err = run_cli("train", "--student", "test_efficientnet+nnconv5", "--cache", url, "--aux", SPLIT,
                             "--mode", "kd-aux-only", "--steps", "2", "--batch-size", "4", "--workers", "0",
                             "--out", tmp_path / "run", "--read-cache", tmp_path / "reads", "--no-pretrained")
    assert code == 0, err
    assert (tmp_path / "run" / "checkpoints" / "last").is_dir()

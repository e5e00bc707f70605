"""Caches on a real S3 API (moto's server on 127.0.0.1, `s3_endpoint` in conftest.py): the store, its leases,
`--storage-option`, `cache info` / `cache verify`, and a `memory://` --out refused."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from helpers import precompute_fakes  # noqa: F401 - registers the kdtest splits
from helpers.precompute_fakes import FakeTeacher
from helpers.train_support import TINY_STUDENT

from kdcache.config import parse_storage_options
from kdcache.errors import KdcacheError
from kdcache.precompute import PrecomputeConfig, precompute, verify_store
from kdcache.store import lease, lock, open_store

OPTIONS = dict(resolution=(32, 48), batch_size=3, shard_size=4, workers=0, feature_layers="default")


def run(url, teacher=None, **options):
    return precompute(PrecomputeConfig(teacher or FakeTeacher(), ["kdtest-labeled"], str(url), **OPTIONS, **options))


def read_all(url) -> dict[str, np.ndarray]:
    split = open_store(url).split("kdtest-labeled")
    return split.read(0, len(split))


def assert_same(url, reference) -> None:
    got, want = read_all(url), read_all(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.fixture
def local_reference(tmp_path):
    return run(tmp_path / "local.zarr")


def test_the_test_server_honours_conditional_writes(s3_bucket):
    import boto3

    client = boto3.client("s3")  # configured by the standard variables alone
    first = client.put_object(Bucket=s3_bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=s3_bucket, Key="k", Body=b"2", IfNoneMatch="*")
    with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=s3_bucket, Key="k", Body=b"2", IfMatch='"not-the-etag"')
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"3", IfMatch=first["ETag"])


def test_a_store_on_s3_equals_a_local_one_and_a_rerun_does_nothing(s3_bucket, local_reference):
    url = run(f"s3://{s3_bucket}/c.zarr")
    assert open_store(url).completeness() == {"kdtest-labeled": (5, 5)}
    assert_same(url, local_reference)
    again = FakeTeacher()
    run(url, teacher=again)
    assert again.calls == 0
    assert lease.LockFolder(url).names("") == []  # every lease is given back


def test_cache_info_and_verify_read_s3(s3_bucket, run_cli):
    url = run(f"s3://{s3_bucket}/c.zarr")
    code, out, err = run_cli("cache", "info", url)
    assert code == 0, err
    assert "5/5 complete" in out
    code, out, err = run_cli("cache", "verify", url, "--sample", "0")
    assert code == 0 and "OK" in err


def verdict(url: str) -> list[str]:
    """What `cache verify` tells a user about a store: its problems, or the error it stops with (the store's
    location written as STORE, so that a local and a remote store can be compared)."""
    try:
        found = verify_store(url, samples=0).problems
    except (KdcacheError, ValueError) as err:
        found = [str(err)]
    bare = url.split("://", 1)[-1]
    return [line.replace(url, "STORE").replace(bare, "STORE") for line in found]


def test_a_damaged_shard_object_is_detected_as_on_disk(s3_bucket, tmp_path):
    """The same damage to the same shard file, on disk and in the bucket, gives the same verdict, not OK."""
    import s3fs
    import zarr

    local, remote = run(tmp_path / "c.zarr"), run(f"s3://{s3_bucket}/c.zarr")
    for url in (local, remote):  # a teacher shard holding NaN, written whole through zarr
        zarr.open_group(url, mode="r+")["kdtest-labeled/teacher"][4:8] = np.nan
    nan_only = verdict(local)
    assert nan_only and verdict(remote) == nan_only
    assert "non-finite 'teacher'" in nan_only[0]
    # a truncated shard file (its index's checksum fails): the verdict says more than the NaN shard's
    fs = s3fs.S3FileSystem()
    key = f"{s3_bucket}/c.zarr/kdtest-labeled/teacher/c/2/0/0"
    fs.pipe_file(key, fs.cat_file(key)[:100])
    truncated = tmp_path / "c.zarr/kdtest-labeled/teacher/c/2/0/0"
    truncated.write_bytes(truncated.read_bytes()[:100])
    assert verdict(local) != nan_only and verdict(remote) == verdict(local)


def test_storage_options_alone_reach_the_store(s3_bucket, s3_endpoint, monkeypatch, local_reference):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = parse_storage_options([f"endpoint_url={s3_endpoint}", "anon=false", "max_concurrency=4"],
                                    "--storage-option")
    assert options == {"endpoint_url": s3_endpoint, "anon": False, "max_concurrency": 4}
    url = run(f"s3://{s3_bucket}/c.zarr", storage_options=options)
    assert_same(url, local_reference)


def test_storage_options_are_a_setting_with_a_flag_and_no_credentials_reach_a_run_dir(tmp_path):
    from kdcache.train import TrainConfig
    from kdcache.train.train_config import config_json

    options = {"endpoint_url": "http://127.0.0.1:9000", "anon": True}
    config = PrecomputeConfig("none", ["kdtest-labeled"], "s3://b/c.zarr", storage_options=options)
    assert "--storage-option endpoint_url=http://127.0.0.1:9000 --storage-option anon=true" in config.command()
    (tmp_path / "c.toml").write_text(config.to_toml())
    assert PrecomputeConfig.from_toml(tmp_path / "c.toml") == config
    train = TrainConfig.from_dict({"cache": "s3://b/c.zarr", "out": str(tmp_path / "run"),
                                   "sources": {"labeled": "synth-train"}, **TINY_STUDENT,
                                   "storage_options": {"secret": "s3cr3t", "endpoint_url": "http://h:1"}})
    text = config_json(train, train.variants[0], {})
    assert "s3cr3t" not in text and "http://h:1" in text


def test_an_unreachable_endpoint_is_one_line(s3_bucket, run_cli):
    code, _, err = run_cli("cache", "info", f"s3://{s3_bucket}/c.zarr", "--storage-option",
                           "endpoint_url=http://127.0.0.1:1")
    assert code == 2 and "cannot reach" in err and "AWS_ENDPOINT_URL" in err and len(err.strip().splitlines()) == 1


def test_bad_storage_option_is_one_line(run_cli):
    code, _, err = run_cli("cache", "info", "s3://bucket/c.zarr", "--storage-option", "endpoint_url")
    assert code == 2 and "KEY=VALUE" in err and len(err.strip().splitlines()) == 1


def test_a_memory_store_is_refused_as_an_out(run_cli, tmp_path):
    code, _, err = run_cli("precompute", "--teacher", "none", "--split", "kdtest-labeled", "--out", "memory://x/c.zarr")
    assert code == 2 and "vanishes when kdcache exits" in err and len(err.strip().splitlines()) == 1


# -- leases ---------------------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_while_the_first_holds_the_store(s3_bucket, local_reference):
    url = f"s3://{s3_bucket}/c.zarr"
    with lock.writing(url, (0, 1)) as held:
        assert held is not None
        with pytest.raises(KdcacheError, match=f"another kdcache precompute \\(pid {os.getpid()}") as err:
            run(url, teacher=FakeTeacher(seed=1))  # another teacher: must never mix into the store
        assert "--shard i/N" in str(err.value) and "\n" not in str(err.value)
        for shard in ((0, 2), (1, 2)):  # a slice beside a whole run is refused too
            with pytest.raises(KdcacheError, match="another kdcache precompute"):
                with lock.writing(url, shard):
                    pass
    run(url)
    assert_same(url, local_reference)


def test_shard_writers_coexist_and_keep_a_whole_run_out(s3_bucket):
    url = f"s3://{s3_bucket}/c.zarr"
    with lock.writing(url, (0, 2)), lock.writing(url, (1, 2)):
        with pytest.raises(KdcacheError, match="another kdcache precompute"):
            with lock.writing(url, (0, 2)):  # the same slice twice
                pass
        with pytest.raises(KdcacheError, match="another kdcache precompute"):
            with lock.writing(url, (0, 1)):
                pass
    with lock.writing(url, (0, 1)):  # all given back
        pass


def write_holder(url, name, **holder):
    folder = lease.LockFolder(url)
    record = {**lease.holder_record(60), **holder}
    assert folder.create(name, record) is not None
    return folder


def test_a_lapsed_lease_of_another_machine_is_taken_over_a_live_one_is_not(s3_bucket, capsys):
    url = f"s3://{s3_bucket}/c.zarr"
    folder = write_holder(url, "writers", pid=4242, host="node-7", boot="another-boot")
    with pytest.raises(KdcacheError, match="pid 4242 on node-7.*its lease lapses at .*: rerun then"):
        with lock.writing(url, (0, 1)):
            pass
    holder, etag = folder.read("writers")
    assert folder.replace("writers", {**holder, "expires": time.time() - 1}, etag) is not None  # it stopped renewing
    with lock.writing(url, (0, 1)):
        assert folder.read("writers")[0]["pid"] == os.getpid()
    assert "taking over the lock of pid 4242 on node-7" in capsys.readouterr().err


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(s3_bucket, capsys):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    url = f"s3://{s3_bucket}/c.zarr"
    write_holder(url, "shard-1-of-2", pid=int(dead.stdout))  # this boot, unexpired, but its process is gone
    with lock.writing(url, (1, 2)):
        pass
    assert f"taking over the lock of pid {int(dead.stdout)}" in capsys.readouterr().err


def test_a_holder_that_lost_its_lease_stops_before_marking_more_work_done(s3_bucket):
    url = f"s3://{s3_bucket}/c.zarr"
    folder = lease.LockFolder(url)
    held = lease.acquire(folder, "writers", refuse=str, lease_s=0.4)
    held.check()
    holder, etag = folder.read("writers")
    folder.replace("writers", {**holder, "pid": 1, "token": "successor"}, etag)  # a successor took over
    deadline = time.monotonic() + 10
    while held.lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(KdcacheError, match="lost the lock .* rerun the same command"):
        held.check()
    held.release()
    assert folder.read("writers")[0]["token"] == "successor"  # the successor's lease is left alone


def test_a_run_whose_lease_is_lost_marks_no_shard_done(s3_bucket, monkeypatch):
    def lost(self):
        raise KdcacheError("lost the lock: rerun the same command to continue")

    monkeypatch.setattr(lease.Lease, "check", lost)
    url = f"s3://{s3_bucket}/c.zarr"
    with pytest.raises(KdcacheError, match="lost the lock"):
        run(url)
    assert open_store(url).completeness() == {"kdtest-labeled": (0, 5)}


def test_a_store_at_a_bucket_root_is_refused(s3_bucket):
    with pytest.raises(KdcacheError, match="whole bucket"):
        lease.LockFolder(f"s3://{s3_bucket}")

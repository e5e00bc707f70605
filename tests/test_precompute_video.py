"""Precompute over `video:` splits: a one-shot run equals a resumed one and `--shard i/N` ones (whatever the
DataLoader workers), the split can be added to a store, `cache verify` passes, and the CLI records `fps`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.data_fixtures import frame_index, write_video
from helpers.precompute_fakes import RESOLUTION, FakeTeacher

from kdcache.data import open_split
from kdcache.precompute import PrecomputeConfig, precompute, verify_store
from kdcache.store import open_store


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    write_video(folder / "drive.mp4", frames=12)
    write_video(folder / "walk.avi", frames=6, fps=5)
    write_video(folder / "cut.mp4", frames=24, keep=0.85)  # its readable frames only
    return folder


def run(url, splits, **options):
    options = dict(dict(resolution=RESOLUTION, batch_size=3, shard_size=4, workers=0), **options)
    return precompute(PrecomputeConfig(FakeTeacher(), list(splits), str(url), **options))


def contents(url, spec) -> dict[str, np.ndarray]:
    return open_store(str(url)).split(spec).read()


def assert_same(got, want) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.fixture(scope="module")
def one_shot(clips, tmp_path_factory):
    return run(tmp_path_factory.mktemp("one") / "c.zarr", [f"video:{clips}"])


def test_the_store_holds_every_readable_frame_under_its_id(clips, one_shot):
    split = open_split(f"video:{clips}")
    stored = contents(one_shot, f"video:{clips}")
    assert list(stored["ids"]) == split.ids and stored["readable"].all() and stored["teacher_ok"].all()
    assert [frame_index(image) for image in stored["image"][-6:]] == list(range(6))  # walk.avi, at 32x48
    assert verify_store(one_shot, teacher=FakeTeacher(), samples=len(split)).ok


def test_shards_with_workers_and_a_resumed_run_equal_the_one_shot_run(clips, one_shot, tmp_path):
    spec = f"video:{clips}"
    want = contents(one_shot, spec)
    sharded = tmp_path / "sharded.zarr"
    for shard in ((0, 2), (1, 2)):  # each worker process skips the batches of the others and of the other shard
        run(sharded, [spec], shard=shard, workers=2)
    assert_same(contents(sharded, spec), want)
    resumed = tmp_path / "resumed.zarr"
    run(resumed, [spec], shard=(0, 3))  # an interrupted run: a third of the shards done
    run(resumed, [spec])  # resumes: starts mid-file, decoding forward to its first frame
    assert_same(contents(resumed, spec), want)


def test_a_video_split_is_added_to_an_existing_store(clips, one_shot, tmp_path):
    url = tmp_path / "grown.zarr"
    first, added = f"video:{clips / 'drive.mp4'}", f"video:{clips}"
    run(url, [first])
    run(url, [first, added])
    assert_same(contents(url, added), contents(one_shot, added))
    shards = -(-len(open_split(added)) // 4)
    assert open_store(str(url)).completeness() == {first: (3, 3), added: (shards, shards)}


def test_cli_fps_option_is_recorded_and_thins_the_frames(clips, tmp_path, run_cli):
    out = tmp_path / "fps.zarr"
    code, _, err = run_cli("precompute", "--teacher", "none", "--split", f"video:{clips}", "--out", out,
                           "--resolution", "32x48", "--split-option", "fps=2.5", "--workers", "0")
    assert code == 0, err
    assert json.loads((out / "zarr.json").read_text())["attributes"]["kdcache"]["split_options"] == {"fps": 2.5}
    ids = list(contents(out, f"video:{clips}")["ids"])
    assert ids[:2] == ["cut.mp4#0@0.000s", "cut.mp4#4@0.400s"] and "walk.avi#2@0.400s" in ids
    assert len(ids) == len(open_split(f"video:{clips}", fps=2.5))

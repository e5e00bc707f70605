"""`video:PATH`: frame numbers and ids, fps / stride, damaged files, and order-independent reads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from helpers.data_fixtures import frame_index, video_frame, write_video
from kdcache.data import open_split
from kdcache.data.video_split import frame_numbers
from kdcache.errors import BadSampleError, KdcacheError


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    write_video(folder / "b" / "drive.mp4", frames=12)
    write_video(folder / "a.avi", frames=6, fps=5)
    (folder / "notes.txt").write_text("ignored by extension")
    return folder


def test_frames_of_every_video_in_path_order_with_stable_ids(clips):
    split = open_split(f"video:{clips}")
    assert (split.labeled, split.space, len(split)) == (False, None, 18)
    assert split.ids[:2] == ["a.avi#0@0.000s", "a.avi#1@0.200s"] and split.ids[6:8] == ["b/drive.mp4#0@0.000s",
                                                                                         "b/drive.mp4#1@0.100s"]
    frames = [frame_index(sample.image) for sample in split]
    assert frames == list(range(6)) + list(range(12))
    sample = split[9]
    assert sample.id == "b/drive.mp4#3@0.300s" and sample.image.shape == (32, 48, 3) and sample.depth is None
    assert sample.meta == {"dataset": "video", "source": str(clips / "b" / "drive.mp4"), "frame": 3, "time": 0.3}
    assert np.abs(sample.image.astype(int) - video_frame(3)).mean() < 8  # the decoded pixels, not just the cell


def test_one_file_slices_and_random_order_reads_give_the_same_pixels(clips):
    split = open_split(f"video:{clips / 'b' / 'drive.mp4'}")
    assert split.ids[0] == "drive.mp4#0@0.000s"
    in_order = [split[i].image for i in range(len(split))]
    # forward jumps, a jump back (reopens), a fresh copy (as a DataLoader worker gets it, no decoder open)
    for index in (7, 2, 11, 3, 3, 0):
        np.testing.assert_array_equal(split[index].image, in_order[index])
    copy = pickle.loads(pickle.dumps(split))
    np.testing.assert_array_equal(copy[5].image, in_order[5])
    window = open_split(f"video:{clips / 'b' / 'drive.mp4'}[4:7]")
    assert [s.id.split("@")[0] for s in window] == ["drive.mp4#4", "drive.mp4#5", "drive.mp4#6"]


def test_fps_and_stride_pick_frames_by_number(clips):
    assert frame_numbers(24, 10.0, fps=3) == [0, 3, 7, 10, 13, 17, 20, 23]  # every 3.33 frames, nearest
    assert frame_numbers(5, 10.0, fps=30) == [0, 1, 2, 3, 4]  # faster than the file: every frame once
    assert frame_numbers(7, 10.0, stride=3) == [0, 3, 6]
    split = open_split(f"video:{clips}", fps=2.5)
    assert [s.id for s in split][:3] == ["a.avi#0@0.000s", "a.avi#2@0.400s", "a.avi#4@0.800s"]
    assert [frame_index(s.image) for s in split] == [0, 2, 4, 0, 4, 8]
    assert [s.meta["frame"] for s in open_split(f"video:{clips}", stride=5)] == [0, 5, 0, 5, 10]
    for options, message in (({"fps": 2, "stride": 3}, "not both"), ({"fps": 0}, "fps=0"),
                             ({"stride": 1.5}, "stride=1.5"), ({"fps": "fast"}, "fps=fast")):
        with pytest.raises(KdcacheError, match=message):
            open_split(f"video:{clips}", **options)


def test_truncated_video_keeps_its_readable_frames_and_reports_the_rest(tmp_path, capsys):
    write_video(tmp_path / "cut.mp4", frames=24, keep=0.85)
    write_video(tmp_path / "whole.mp4", frames=3)
    split = open_split(f"video:{tmp_path}")
    kept = len(split) - 3
    assert 0 < kept < 24
    assert [frame_index(s.image) for s in split] == list(range(kept)) + [0, 1, 2]
    log = " ".join(capsys.readouterr().err.split())
    assert f"{24 - kept} of its 24 frames do not decode" in log and f"keeping the {kept} that do" in log


def test_undecodable_video_is_skipped_or_refused_when_strict(tmp_path, capsys):
    write_video(tmp_path / "good.mp4", frames=2)
    (tmp_path / "garbage.mp4").write_bytes(bytes(np.random.default_rng(1).integers(0, 255, 3000, dtype=np.uint8)))
    (tmp_path / "empty.mkv").write_bytes(b"")
    split = open_split(f"video:{tmp_path}")
    assert split.ids == ["good.mp4#0@0.000s", "good.mp4#1@0.100s"]
    assert sorted(err.path.split("/")[-1] for err in split.skipped) == ["empty.mkv", "garbage.mp4"]
    assert "skipped 2 of 3 videos that cannot be read" in " ".join(capsys.readouterr().err.split())
    assert "Invalid data found" in split.skipped[0].reason  # ffmpeg's own words
    with pytest.raises(BadSampleError, match="no frame decodes"):
        open_split(f"video:{tmp_path}", strict=True)


def test_missing_path_and_folder_without_videos_are_one_line_errors(tmp_path):
    with pytest.raises(KdcacheError, match="does not exist: give a video file or a folder"):
        open_split(f"video:{tmp_path / 'nope.mp4'}")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(KdcacheError, match="no readable video"):
        open_split(f"video:{tmp_path}")


def test_a_run_mixing_video_and_synthetic_splits_takes_the_video_options(clips):
    # split options go to every split of a run: the renderer must not refuse the video's
    assert len(open_split("synth-aux[:1]", size=(24, 32), fps=5, stride=None)) == 1

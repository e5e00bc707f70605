"""`kdcache data list` and `kdcache data show` through the real CLI entry point."""

from __future__ import annotations

import numpy as np
from PIL import Image

from helpers.data_fixtures import write_hrwsi, write_nyu

from kdcache.depth_colors import LEGEND_WIDTH


def test_data_list_counts_present_and_marks_missing(data_root, run_cli):
    write_nyu(data_root)
    code, out, _ = run_cli("data", "list")
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert "3" in lines["nyu-test"] and "depth" in lines["nyu-test"]
    assert "missing" in lines["kitti-eigen-test"] and "missing" in lines["hrwsi-val"]
    assert "pattern" in lines["folder:PATH"]


def test_data_show_writes_rgb_and_depth_panels(data_root, run_cli, tmp_path):
    write_nyu(data_root, height=12, width=16)
    out = tmp_path / "nyu.png"
    code, text, _ = run_cli("data", "show", "nyu-test", "--out", out, "--index", "1")
    assert code == 0 and "12x16" in text and "GT range" in text
    picture = np.asarray(Image.open(out))
    assert picture.shape == (12, 32 + LEGEND_WIDTH, 3)  # RGB | depth | colour bar
    holes = (np.add.outer(np.arange(12), np.arange(16)) % 5) == 0  # raw depth holes are drawn black
    assert (picture[:, 16:32][holes] == 0).all() and picture[:, 16:32][~holes].any(axis=-1).all()


def test_data_show_unlabeled_folder_and_default_name(tmp_path, run_cli, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((4, 6, 3), 50, np.uint8)).save(photos / "a.png")
    monkeypatch.chdir(tmp_path)
    code, text, _ = run_cli("data", "show", f"folder:{photos}")
    assert code == 0 and "4x6" in text
    written = list(tmp_path.glob("folder*-0.png"))
    assert len(written) == 1 and np.asarray(Image.open(written[0])).shape == (4, 6, 3)


def test_data_show_user_errors_exit_2_with_one_line(data_root, run_cli):
    code, _, err = run_cli("data", "show", "nyu-test")
    assert code == 2 and "kdcache data download nyu" in err
    write_hrwsi(data_root, "val", count=2)
    code, _, err = run_cli("data", "show", "hrwsi-val", "--index", "5")
    assert code == 2 and "out of range" in err
    code, _, err = run_cli("data", "show", "nyu-tset")
    assert code == 2 and "nyu-test" in err
    code, _, err = run_cli("data", "show", "synth-test[:1]", "--cmap", "no-such-map", "--out", data_root / "x.png")
    assert code == 2 and "unknown colormap 'no-such-map'" in err and len(err.strip().splitlines()) == 1


def test_data_show_a_video_frame_with_a_split_option(tmp_path, run_cli):
    from helpers.data_fixtures import frame_index, write_video

    write_video(tmp_path / "clips" / "drive.mp4", frames=12)
    out = tmp_path / "frame.png"
    code, text, err = run_cli("data", "show", f"video:{tmp_path / 'clips'}", "--split-option", "fps=2.5",
                              "--index", "2", "--out", out)
    assert code == 0, err
    assert "drive.mp4#8@0.800s" in text and "32x48" in text and "samples" in text
    assert frame_index(np.asarray(Image.open(out))) == 8

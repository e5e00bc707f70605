"""`kdcache infer` on images, folders and videos with students, teachers and exported models."""

import numpy as np
import pytest
from PIL import Image

from helpers.eval_fixtures import save_tiny_student
from kdcache.depth_colors import LEGEND_WIDTH, colorize, to_nearness
from kdcache.infer import infer
from kdcache.students import load_student


def _write_png(path, seed, size=(40, 56)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _write_gif(path, frames=4, size=(30, 42)):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=125, loop=0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return save_tiny_student(tmp_path_factory.mktemp("infer") / "run")


def test_kdcache_infer_folder_and_gif_video(run, run_cli, tmp_path):
    folder = tmp_path / "in"
    _write_png(folder / "a.png", 1)
    _write_png(folder / "sub" / "b.jpg", 2)
    (folder / "broken.png").write_bytes(b"not a png")
    _write_gif(tmp_path / "clip.gif")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli("infer", folder, tmp_path / "clip.gif", "--model", run, "--out", out,
                                   "-f", "color", "-f", "side", "-f", "png16", "-f", "npy")
    assert code == 0, stderr
    assert "unreadable skipped" in stdout and "fps" in stdout
    depth = np.load(out / "sub" / "b_depth.npy")
    assert depth.shape == (40, 56) and depth.dtype == np.float32
    assert depth.min() > 0
    mm = np.asarray(Image.open(out / "sub" / "b_depth16.png"))
    assert mm.dtype == np.uint16 and np.array_equal(mm, np.round(depth * 1000).astype(np.uint16))
    assert np.asarray(Image.open(out / "a_side.png")).shape == (40, 112 + LEGEND_WIDTH, 3)  # RGB | depth | bar
    assert np.asarray(Image.open(out / "a_depth.png")).shape == (40, 56, 3)
    with Image.open(out / "clip_depth.gif") as video:
        assert video.n_frames == 4 and video.size == (84 + LEGEND_WIDTH, 30)


def test_npy_holds_the_students_own_output_in_metres(run, tmp_path):
    import torch

    from kdcache.evaluate.predictors import to_tensor

    _write_png(tmp_path / "a.png", 1)
    infer(str(run), [tmp_path / "a.png"], tmp_path / "out", formats=("npy",), input_size=(40, 56))
    model, _ = load_student(run)
    image = np.asarray(Image.open(tmp_path / "a.png"))
    with torch.no_grad():
        expected = model(to_tensor(image))[0, 0].numpy()
    assert np.allclose(np.load(tmp_path / "out" / "a_depth.npy"), expected, rtol=1e-5)


def test_relative_teacher_writes_disparity_and_refuses_millimetres(tmp_path, run_cli):
    from helpers.tiny_models import make_tiny_dpt

    teacher = f"hf:{make_tiny_dpt(tmp_path / 'dpt')}"
    _write_png(tmp_path / "x.png", 3)
    summary = infer(teacher, [tmp_path / "x.png"], tmp_path / "out", formats=("npy",))
    assert summary["output_space"] == "disparity" and (tmp_path / "out" / "x_disparity.npy").is_file()
    code, _, stderr = run_cli("infer", tmp_path / "x.png", "--model", teacher, "--out", tmp_path / "o2", "-f", "png16")
    assert code == 2 and "--format npy" in stderr
    code, _, stderr = run_cli("infer", tmp_path / "missing.png", "--model", teacher, "--out", tmp_path / "o3")
    assert code == 2 and "does not exist" in stderr


def test_colour_maps_show_near_as_bright():
    depth = np.array([[1.0, 10.0]])
    color = colorize(to_nearness(depth, "depth"), 0.1, 1.0)
    assert color[0, 0].sum() > color[0, 1].sum()


def test_mp4_video_round_trip(run, tmp_path):
    from pathlib import Path

    from kdcache.video import VideoWriter, read_frames

    clip = Path(tmp_path / "clip.mp4")
    writer = VideoWriter(clip, 10.0)
    for i in range(5):
        writer.append(np.full((32, 48, 3), 40 * i, np.uint8))
    writer.close()
    summary = infer(str(run), [clip], tmp_path / "out")
    assert summary["videos"][0]["frames"] == 5
    assert len(list(read_frames(tmp_path / "out" / "clip_depth.mp4"))) == 5


def test_truncated_video_gives_its_readable_frames_and_an_undecodable_one_is_skipped(run, run_cli, tmp_path):
    from helpers.data_fixtures import write_video
    from kdcache.video import probe_video, read_frames

    cut = write_video(tmp_path / "in" / "cut.mp4", frames=24, keep=0.85)
    (tmp_path / "in" / "garbage.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 8)
    readable = probe_video(cut).frames
    code, stdout, stderr = run_cli("infer", tmp_path / "in", "--model", run, "--out", tmp_path / "out")
    assert code == 0, stderr
    log = " ".join(stderr.split())
    assert f"{24 - readable} of its 24 frames do not decode" in log and "skipped" in log and "garbage.mkv" in log
    assert len(list(read_frames(tmp_path / "out" / "cut_depth.mp4"))) == readable


def test_no_readable_image_is_an_error_not_success(run, run_cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    (folder / "b.jpg").write_bytes(b"")
    code, stdout, stderr = run_cli("infer", folder, "--model", run, "--out", tmp_path / "out")
    assert code == 2 and stdout == "" and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: none of the 2 image(s) in the inputs could be read") and "a.png" in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["garbage-mp4", "garbage-gif"])
def test_an_unreadable_video_alone_is_one_line_naming_it(damage, run, run_cli, tmp_path):
    """ffmpeg's banner stays out: the line names the input (not the output folder) and the decoder's reason, and
    nothing is written."""
    clip = tmp_path / ("clip.mp4" if damage == "garbage-mp4" else "clip.gif")
    if damage == "garbage-gif":
        _write_gif(clip, frames=6)
        clip.write_bytes(clip.read_bytes()[:40])  # the header and no whole frame
    else:
        clip.write_bytes(b"\x00garbage" * 64)
    out = tmp_path / "out"
    code, _, stderr = run_cli("infer", clip, "--model", run, "--out", out)
    assert code == 2 and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("error: none of the 1 ") and "could be read" in stderr and str(clip) in stderr
    assert str(out) not in stderr
    assert not out.exists() or not any(path.is_file() for path in out.rglob("*"))


def test_a_truncated_gif_gives_its_whole_frames(run, run_cli, tmp_path):
    from kdcache.video import read_frames

    clip = tmp_path / "clip.gif"
    _write_gif(clip, frames=6)
    data = clip.read_bytes()
    clip.write_bytes(data[: len(data) * 2 // 3])
    kept = len(list(read_frames(clip)))
    assert 0 < kept < 6
    code, _, stderr = run_cli("infer", clip, "--model", run, "--out", tmp_path / "out")
    assert code == 0 and "Traceback" not in stderr, stderr
    assert len(list(read_frames(tmp_path / "out" / "clip_depth.gif"))) == kept

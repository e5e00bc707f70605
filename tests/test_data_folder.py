"""`folder:PATH`: recursive discovery, sorted ids, skipping (or refusing) unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.data_fixtures import write_bad_images
from kdcache.data import iter_samples, open_split
from kdcache.errors import BadSampleError, KdcacheError

HEADER_BAD = {"empty.jpg", "garbage.jpg", "notes.png"}  # caught when the split is opened
DECODE_BAD = {"truncated.jpg", "truncated.png"}  # caught only when the pixels are read


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "b" / "deep").mkdir(parents=True)
    Image.new("RGB", (5, 4), (9, 9, 9)).save(folder / "b" / "deep" / "x.PNG")
    Image.new("RGB", (5, 4), (1, 2, 3)).save(folder / "a.JPEG")
    Image.new("L", (3, 2), 7).save(folder / "b" / "gray.webp")
    Image.new("RGB", (2, 2)).save(folder / "c.tiff")
    (folder / "readme.txt").write_text("not an image, ignored by extension")
    write_bad_images(folder / "z_bad")
    return folder


def test_folder_finds_images_recursively_and_skips_unreadable(photos, capsys):
    ds = open_split(f"folder:{photos}")
    assert (ds.labeled, ds.space) == (False, None)
    good = ["a.JPEG", "b/deep/x.PNG", "b/gray.webp", "c.tiff"]
    assert ds.ids == good + sorted(f"z_bad/{name}" for name in DECODE_BAD)
    assert {err.path.split("/")[-1] for err in ds.skipped} == HEADER_BAD
    log = capsys.readouterr().err
    assert "skipped 3 of 9 files" in log and "empty file (0 bytes)" in log
    sample = ds[1]
    assert sample.id == "b/deep/x.PNG" and sample.depth is None and sample.valid is None
    assert sample.image.shape == (4, 5, 3) and sample.meta["source"].endswith("x.PNG")
    with pytest.raises(BadSampleError, match="truncated"):
        ds[ds.ids.index("z_bad/truncated.png")]
    skipped = []
    read = [s.id for s in iter_samples(ds, skipped=skipped)]
    assert read == good and len(skipped) == 2


def test_plain_iteration_follows_the_split_policy(photos, tmp_path, capsys):
    good = ["a.JPEG", "b/deep/x.PNG", "b/gray.webp", "c.tiff"]
    split = open_split(f"folder:{photos}")
    assert "pass --strict" in capsys.readouterr().err  # the flag, not the Python keyword only
    assert [s.id for s in split] == good  # unlabeled aux data: corrupt files are skipped ...
    assert len(split.skipped) == len(HEADER_BAD) + len(DECODE_BAD)  # ... and counted
    assert "truncated" in capsys.readouterr().err
    sliced = open_split(f"folder:{photos}[1:]")
    assert [s.id for s in sliced] == good[1:] and len(sliced.skipped) == len(HEADER_BAD) + len(DECODE_BAD)
    decode_bad_only = tmp_path / "decode-bad"
    write_bad_images(decode_bad_only)
    for name in HEADER_BAD:
        (decode_bad_only / name).unlink()
    Image.new("RGB", (2, 2)).save(decode_bad_only / "good.png")
    with pytest.raises(BadSampleError, match="truncated"):  # strict: stop, as labeled splits do
        list(open_split(f"folder:{decode_bad_only}", strict=True))


def test_labeled_splits_stop_at_a_bad_sample_when_iterated(photos):
    from kdcache.data.splits import SlicedSplit

    class Labeled:
        name, labeled, space = "labeled", True, "depth"

        def __len__(self):
            return 2

        def __getitem__(self, index):
            raise BadSampleError(f"frame {index}", "corrupt")

    for split in (Labeled(), SlicedSplit(Labeled(), 0, 2, "labeled[0:2]")):
        with pytest.raises(BadSampleError, match="frame 0"):
            list(split)


def test_folder_strict_raises_on_the_first_unreadable_file(photos):
    with pytest.raises(BadSampleError, match="empty file"):
        open_split(f"folder:{photos}", strict=True)


def test_folder_relative_to_data_root_and_errors(data_root, tmp_path):
    (data_root / "mine").mkdir()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(data_root / "mine" / "one.bmp")
    assert open_split("folder:mine").ids == ["one.bmp"]
    with pytest.raises(KdcacheError, match="is not an existing folder"):
        open_split(f"folder:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KdcacheError, match="no readable images"):
        open_split(f"folder:{tmp_path / 'empty'}")


def test_folder_pixel_limit_skips_oversized(tmp_path):
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "small.png")
    ds = open_split(f"folder:{tmp_path}", max_pixels=100)
    assert ds.ids == ["small.png"] and "over the limit" in ds.skipped[0].reason

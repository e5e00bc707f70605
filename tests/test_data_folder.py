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


def test_symlink_loops_and_second_links_are_read_once(tmp_path, capsys):
    """Links are followed, but each real folder is walked once and each real image read once; one log line says
    what was left out, and the ids are the paths a folder without links would have."""
    folder, outside = tmp_path / "photos", tmp_path / "outside"
    (folder / "sub").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (4, 3), (1, 1, 1)).save(folder / "a.png")
    Image.new("RGB", (4, 3), (2, 2, 2)).save(folder / "sub" / "b.png")
    Image.new("RGB", (4, 3), (3, 3, 3)).save(outside / "c.png")
    (folder / "sub" / "up").symlink_to("..")  # a loop back to the root
    (folder / "z_again.png").symlink_to(folder / "a.png")  # a second name for a file
    (folder / "ext").symlink_to(outside)  # a link out of the tree is followed, as always
    split = open_split(f"folder:{folder}")
    assert split.ids == ["a.png", "ext/c.png", "sub/b.png"]
    assert [int(sample.image[0, 0, 0]) for sample in split] == [1, 3, 2]
    log = " ".join(capsys.readouterr().err.split())
    assert "skipped 2 path(s) leading to a folder or image already read (a symlink loop or a second link)" in log


def test_a_file_name_that_is_not_utf8_is_cached_with_a_faithful_id(tmp_path, run_cli):
    """A name with a byte that is not UTF-8 (a Latin-1 é) is cached like any other: the shard is complete and the
    id is the name with that byte written \\xe9 (and its backslash doubled), which decodes back to the bytes."""
    import codecs
    import os

    import zarr

    folder = tmp_path / "photos"
    folder.mkdir()
    name = b"caf\xe9 \\ 1.png"
    Image.new("RGB", (6, 4), (5, 6, 7)).save(os.fsdecode(os.fsencode(folder) + b"/" + name))
    Image.new("RGB", (6, 4), (8, 9, 10)).save(folder / "ok.png")
    out = tmp_path / "store.zarr"
    code, _, err = run_cli("precompute", "--teacher", "none", "--split", f"folder:{folder}", "--out", out,
                           "--resolution", "4x6", "--workers", "0")
    assert code == 0 and "Traceback" not in err, err
    root = zarr.open_group(str(out), mode="r")
    group = root[next(iter(root.group_keys()))]
    ids = [str(i) for i in group["ids"][:]]
    assert ids == ["caf\\xe9 \\\\ 1.png", "ok.png"] and bool(np.all(group["shard_done"][:]))
    assert codecs.escape_decode(ids[0].encode("utf-8"))[0] == name
    assert group["image"][0][0, 0].tolist() == [5, 6, 7] and bool(np.all(group["readable"][:]))

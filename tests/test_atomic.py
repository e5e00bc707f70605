"""kdcache.atomic: every output lands whole or not at all, and a failed write leaves nothing behind."""

import pytest

from kdcache import atomic


def test_write_text_and_bytes_replace_whole_files(tmp_path):
    target = tmp_path / "deep" / "out.json"
    assert atomic.write_text(target, "{}") == target and target.read_text() == "{}"
    assert atomic.write_bytes(target, b"[1]", sync=True) == 3 and target.read_bytes() == b"[1]"
    with pytest.raises(FileExistsError):
        atomic.write_bytes(target, b"other", exclusive=True)
    assert target.read_bytes() == b"[1]" and sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_replacing_keeps_the_extension_and_cleans_up_a_failed_write(tmp_path):
    target = tmp_path / "picture.png"
    with atomic.replacing(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and atomic.TEMP_MARK in tmp.name
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["picture.png"]


def test_replacing_dir_swaps_a_whole_folder_in(tmp_path):
    checkpoint = tmp_path / "last"
    for version in ("1", "2"):
        with atomic.replacing_dir(checkpoint) as staging:
            (staging / "weights").write_text(version)
            (staging / "meta").write_text(version)
        assert {p.name: p.read_text() for p in checkpoint.iterdir()} == {"weights": version, "meta": version}
    with pytest.raises(RuntimeError):
        with atomic.replacing_dir(checkpoint) as staging:
            (staging / "weights").write_text("3")
            raise RuntimeError("killed mid-write")
    assert (checkpoint / "weights").read_text() == "2" and [p.name for p in tmp_path.iterdir()] == ["last"]

"""Damage is caught, never trained on: a deleted, truncated, overwritten shard file or one flipped byte inside a
chunk is found on read, by `kdcache cache verify` and `cache info`, refused by `kdcache train` in one line, and
repaired bit for bit by rerunning the same `kdcache precompute` command."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import helpers.precompute_fakes  # noqa: F401  (registers the kdtest-* splits)
from helpers.old_layout import drop_chunk_checksums
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.errors import KdcacheError
from kdcache.store import open_store
from kdcache.store.integrity import check_split
from kdcache.store.shardread import chunk_checksums
from kdcache.train.loader import read_checked


def delete(file: Path) -> None:
    file.unlink()


def flip_byte(file: Path) -> None:
    """One bit flipped inside the first chunk: just after its 16-byte Blosc header (in a file of one small chunk,
    such as a flag's, before the CRC that closes it)."""
    data = bytearray(file.read_bytes())
    data[min(16, len(data) - 5)] ^= 0x10
    file.write_bytes(bytes(data))


def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def random_bytes(file: Path) -> None:
    file.write_bytes(np.random.default_rng(0).integers(0, 256, file.stat().st_size, dtype=np.uint8).tobytes())


DAMAGES = {"deleted": (delete, "missing file"), "flipped-byte": (flip_byte, "bad checksum in the chunk of sample"),
           "truncated": (truncate, "bad index checksum"), "random-bytes": (random_bytes, "bad index checksum")}
ARRAYS = ("image", "teacher", "gt")
SPLIT = "synth-train"


def shard_file(store: Path, group: str, array: str, shard: int) -> Path:
    folder = store / group / array / "c" / str(shard)
    return folder if folder.is_file() else next(p for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """16 labeled samples with teacher targets, shards of 8: image, teacher and gt files in each shard."""
    return build_cache(tmp_path_factory.mktemp("clean") / "c.zarr", {SPLIT: 16, "synth-test": 8}, features=False)


@pytest.fixture
def copy(clean, tmp_path):
    out = tmp_path / "c.zarr"
    shutil.copytree(clean, out)
    return out


def damaged(copy: Path, array: str, damage: str, shard: int = 1) -> Path:
    DAMAGES[damage][0](shard_file(copy, SPLIT, array, shard))
    return copy


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: "), err
    return err.strip().splitlines()[-1]


# --- on read -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("array", ARRAYS)
def test_every_read_of_a_damaged_shard_is_one_error_naming_it_and_the_repair(copy, array, damage):
    split = open_store(str(damaged(copy, array, damage))).split(SPLIT)
    np.testing.assert_array_equal(split.read(0, 8)[array], open_store(str(copy)).split(SPLIT).read(0, 8)[array])
    for start, stop in ((8, 16), (8, 11), (6, 14)):  # whole shard, a few samples of it, across two shards
        for read in (split.read, functools.partial(read_checked, split)):  # the store's own, training's
            with pytest.raises(KdcacheError) as caught:
                read(start, stop, [array])
            message = str(caught.value)
            assert f"shard 1 of split '{SPLIT}' is damaged ({array}: {DAMAGES[damage][1]}" in message
            assert f"kdcache cache verify {copy}" in message and "\n" not in message
        # training, which knows precompute's command line, names the exact command that repairs it
        assert f"`kdcache precompute --teacher tiny-teacher --split {SPLIT} --out {copy}" in message


def test_a_chunk_left_out_for_being_all_fill_reads_as_fill_and_is_no_damage(tmp_path):
    url = build_cache(tmp_path / "c.zarr", {"synth-aux": 8}, shard_size=4, features=False)
    root = zarr.open_group(url, mode="r+")
    from kdcache.store.writer import ShardWriter

    # shard 1 rewritten with all-black images and unreadable flags (all fill value): none of its chunks is stored,
    # its files hold only an index of MISSING entries or the fill values, which is legitimate
    data = {name: np.zeros_like(root[f"synth-aux/{name}"][4:8]) for name in ("image", "teacher", "teacher_ok",
                                                                              "readable")}
    data["ids"] = np.array([""] * 4)
    writer = ShardWriter(url)
    writer.submit("synth-aux", 1, 4, data)
    writer.close()
    split = open_store(url).split("synth-aux")
    assert not split.read(4, 8, ["image"])["image"].any() and list(split.read(4, 8)["ids"]) == [""] * 4
    assert check_split(split).damage == [] and check_split(split, "index").damage == []


def test_a_missing_file_of_a_shard_not_yet_written_is_no_damage(copy):
    zarr.open_group(str(copy), mode="r+")[f"{SPLIT}/shard_done"][1] = False
    delete(shard_file(copy, SPLIT, "image", 1))
    split = open_store(str(copy)).split(SPLIT)
    assert not split.read(8, 16, ["image"])["image"].any()  # nothing written there yet: the fill value
    assert check_split(split).damage == []


# --- stores written before chunks carried checksums ---------------------------------------------------------
def test_a_store_written_before_chunk_checksums_still_reads_and_verify_says_what_it_could_not_check(tmp_path,
                                                                                                     run_cli):
    reference = build_cache(tmp_path / "new.zarr", {SPLIT: 16}, features=False)
    url = drop_chunk_checksums(build_cache(tmp_path / "old.zarr", {SPLIT: 16}, features=False))
    root = zarr.open_group(url, mode="r")
    assert not any(chunk_checksums(root[f"{SPLIT}/{name}"]) for name in ("image", "ids", "shard_done"))
    old, new = open_store(url).split(SPLIT).read(), open_store(reference).split(SPLIT).read()
    for name in new:
        np.testing.assert_array_equal(old[name], new[name], err_msg=name)
    code, _, err = run_cli("cache", "verify", url, "--sample", "0")
    assert code == 0, err
    assert "written before every chunk carried a checksum" in " ".join(err.split())
    truncate(shard_file(Path(url), SPLIT, "teacher", 0))  # what the shard index's checksum still catches
    code, _, err = run_cli("cache", "verify", url, "--sample", "0")
    assert code == 1 and "shard 0, teacher: bad index checksum" in " ".join(err.split())


# --- kdcache cache verify / cache info ------------------------------------------------------------------------
def table_rows(stdout: str) -> dict[str, list[str]]:
    """{first cell: cells} of the rows of the rich tables printed."""
    return {cells[0]: cells for line in stdout.splitlines() if (cells := [c.strip() for c in line.split("│")[1:-1]])}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("array", ARRAYS)
def test_cache_verify_names_each_damaged_shard_and_the_repair(copy, array, damage, run_cli):
    code, _, err = run_cli("cache", "verify", damaged(copy, array, damage), "--sample", "0")
    text = " ".join(err.split())
    assert code == 1, err
    assert f"damaged: {SPLIT}: shard 1, {array}: {DAMAGES[damage][1]}" in text
    assert f"repair: rerun `kdcache precompute --teacher tiny-teacher --split {SPLIT} --out {copy}" in text
    assert "OK" not in text and "Traceback" not in text


def test_cache_verify_reads_every_file_of_a_sound_store(clean, run_cli):
    code, stdout, err = run_cli("cache", "verify", clean, "--sample", "0")
    assert code == 0 and "every checksum holds" in " ".join(err.split()), err
    rows = table_rows(stdout)
    # image, teacher, teacher_ok, gt, valid, ids and readable: one file each per shard, every one read
    assert rows[SPLIT][2].startswith("14 (") and rows["synth-test"][2].startswith("7 ("), stdout


@pytest.mark.parametrize("damage", ["deleted", "truncated", "random-bytes"])  # a flipped byte: `cache verify`'s
@pytest.mark.parametrize("array", ARRAYS)
def test_cache_info_says_complete_only_when_true(copy, array, damage, run_cli):
    code, stdout, err = run_cli("cache", "info", damaged(copy, array, damage))
    assert code == 0, err
    shards = table_rows(stdout)[SPLIT][3]
    assert shards == "2/2 DAMAGED (1 shards)", stdout
    assert f"kdcache cache verify {copy}" in " ".join(err.split())


def test_cache_info_on_a_sound_store_says_complete_and_points_to_verify(clean, run_cli):
    code, stdout, err = run_cli("cache", "info", clean)
    assert code == 0 and "2/2 complete" in stdout
    assert "cache verify" in " ".join(err.split()) and "DAMAGED" not in stdout


# --- kdcache train ----------------------------------------------------------------------------------------------
def train_args(cache, out, workers: str = "0"):
    return ("train", "--student", TINY_STUDENT["student"], "--cache", cache, "--labeled", SPLIT, "--val",
            "synth-test", "--mode", "kd-labeled", "--out", out, "--steps", "4", "--batch-size", "4", "--workers",
            workers, "--no-pretrained")


@pytest.mark.parametrize("array, damage, workers", [
    *((array, damage, "0") for array in ARRAYS for damage in sorted(DAMAGES)),
    ("gt", "deleted", "1"),  # found in a loader worker: still one line
])
def test_training_refuses_a_damaged_shard_in_one_line(copy, tmp_path, array, damage, workers, run_cli):
    code, _, err = run_cli(*train_args(damaged(copy, array, damage), tmp_path / "run", workers))
    line = one_line_error(code, err)
    assert f"shard 1 of split '{SPLIT}' is damaged ({array}: {DAMAGES[damage][1]}" in line
    assert "repair it with `kdcache precompute" in line


# --- kdcache precompute, rerun --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny student checkpoint as the teacher (`ckpt:`): the tiny random HF teachers' maps underflow float16 to
    the fill value, which would leave the teacher shards without a chunk to damage."""
    import torch

    from kdcache.students import create_student, save_student

    torch.manual_seed(0)
    model = create_student(TINY_STUDENT["student"], **TINY_STUDENT["student_overrides"])
    return f"ckpt:{save_student(model, tmp_path_factory.mktemp('teacher'), {'output_space': 'depth'})}"


def precompute_args(teacher, out):
    return ("precompute", "--teacher", teacher, "--split", "kdtest-labeled", "--out", out, "--resolution", "32x48",
            "--batch-size", "4", "--shard-size", "4", "--workers", "0")


def store_files(url: Path) -> dict[str, bytes]:
    return {str(p.relative_to(url)): p.read_bytes() for p in sorted(url.rglob("*"))
            if p.is_file() and p.name != "zarr.json"}


@pytest.fixture(scope="module")
def reference(teacher, tmp_path_factory):
    """A clean run of the precompute command the repair tests rerun."""
    from kdcache.cli.main import main

    out = tmp_path_factory.mktemp("reference") / "c.zarr"
    assert main([str(arg) for arg in precompute_args(teacher, out)]) == 0
    return out


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("array", ARRAYS)
def test_rerunning_precompute_repairs_the_damaged_shard_bit_for_bit(teacher, reference, tmp_path, array, damage,
                                                                     run_cli):
    out = tmp_path / "c.zarr"
    shutil.copytree(reference, out)
    DAMAGES[damage][0](shard_file(out, open_store(str(out)).split("kdtest-labeled").group, array, 2))
    code, _, err = run_cli(*precompute_args(teacher, out))
    text = " ".join(err.split())
    assert code == 0, err
    assert f"1 damaged shard(s) (kdtest-labeled: shard 2, {array}: {DAMAGES[damage][1]}" in text
    assert "wrote 1 shards (4 samples)" in text  # the teacher redid that shard only
    assert store_files(out) == store_files(reference)  # every array's bytes: the clean run's


def test_rerunning_precompute_repairs_every_damage_bit_for_bit(teacher, reference, tmp_path, run_cli):
    out = tmp_path / "c.zarr"
    shutil.copytree(reference, out)
    group = open_store(str(out)).split("kdtest-labeled").group
    for shard, (array, damage) in enumerate([("image", "deleted"), ("teacher", "flipped-byte"), ("gt", "truncated"),
                                             ("valid", "random-bytes"), ("ids", "deleted")]):
        DAMAGES[damage][0](shard_file(out, group, array, shard))
    code, _, err = run_cli("cache", "verify", out, "--sample", "0")
    assert code == 1
    code, _, err = run_cli(*precompute_args(teacher, out))
    assert code == 0, err
    assert "5 damaged shard(s)" in " ".join(err.split()) and "wrote 5 shards (20 samples)" in " ".join(err.split())
    assert store_files(out) == store_files(reference)  # every array's bytes: the clean run's
    code, _, err = run_cli(*precompute_args(teacher, out))
    assert code == 0 and "complete, nothing to do" in err
    assert run_cli("cache", "verify", out, "--sample", "0")[0] == 0


@pytest.mark.parametrize("array", ["features/deep", "shard_done"])
def test_a_rerun_redoes_only_the_damaged_shard(tmp_path, array):
    from helpers.precompute_fakes import FakeTeacher

    from kdcache.precompute import PrecomputeConfig, precompute

    def run(teacher):
        return precompute(PrecomputeConfig(teacher, ["kdtest-big"], str(tmp_path / "c.zarr"), resolution=(32, 48),
                                           batch_size=2, shard_size=4, feature_layers="default"))

    run(FakeTeacher())
    before = store_files(tmp_path / "c.zarr")
    flip_byte(shard_file(tmp_path / "c.zarr", "kdtest-big", array, 7))
    done = open_store(str(tmp_path / "c.zarr")).split("kdtest-big").shards_done()
    assert done == ((9, 10) if array == "shard_done" else (10, 10))  # a flag failing its checksum: not done
    again = FakeTeacher()
    run(again)
    assert again.images == 4  # shard 7's four samples, nothing else
    assert store_files(tmp_path / "c.zarr") == before


def test_verify_and_reads_go_through_the_stores_backend_not_local_paths(tmp_path, run_cli):
    import fsspec

    url = build_cache(f"memory://{tmp_path.name}/c.zarr", {SPLIT: 16}, features=False)  # as s3:// would be
    memory = fsspec.filesystem("memory")
    memory.rm(f"/{tmp_path.name}/c.zarr/{SPLIT}/image/c/1/0/0/0")
    teacher = f"/{tmp_path.name}/c.zarr/{SPLIT}/teacher/c/0/0/0"
    data = bytearray(memory.cat(teacher))
    data[len(data) // 3] ^= 0x10
    memory.pipe(teacher, bytes(data))
    with pytest.raises(KdcacheError, match="shard 1 of split 'synth-train' is damaged \\(image: missing file"):
        open_store(url).split(SPLIT).read(8, 16)
    code, _, err = run_cli("cache", "verify", url, "--sample", "0")
    text = " ".join(err.split())
    assert code == 1 and "shard 1, image: missing file" in text and "shard 0, teacher: bad checksum" in text
    memory.rm(f"/{tmp_path.name}", recursive=True)

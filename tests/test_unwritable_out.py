"""An output that cannot be written is one line naming the path and the reason, for every command that writes.

Places: below /proc, below a plain file (both in-process), a read-only filesystem and a filesystem that fills up
mid-run (real tmpfs mounts in a private user namespace, see helpers/small_disks.py). After a full disk, what was written
stays consistent, and rerunning (train: with --resume) finishes with the same result as a run on a roomy disk.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.students import create_student, load_student, save_student

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny cache, a saved student and a folder of images: what the four commands read."""
    root = tmp_path_factory.mktemp("inputs")
    cache = build_cache(root / "cache.zarr", {"synth-train": 8, "synth-test": 4}, teacher=False)
    student = save_student(create_student(TINY_STUDENT["student"], **TINY_STUDENT["student_overrides"]),
                           root / "student", {"output_space": "depth", "resolution": [32, 48]})
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(12):
        Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)).save(images / f"img{index:02d}.png")
    return {"cache": cache, "student": student, "images": images}


def command(name: str, inputs) -> list[str]:
    """argv of `name` with `{out}` where its output goes."""
    return {
        "precompute": ["precompute", "--teacher", "none", "--split", "synth-test[:48]", "--out", "{out}/store.zarr",
                       "--resolution", "32x48", "--shard-size", "8", "--workers", "0"],
        "train": ["train", "--student", TINY_STUDENT["student"], "--cache", inputs["cache"], "--labeled",
                  "synth-train", "--mode", "gt-only", "--out", "{out}/run", "--steps", "4", "--checkpoint-every", "2",
                  "--batch-size", "2", "--workers", "0", "--log-every", "1", "--no-pretrained"],
        "infer": ["infer", str(inputs["images"]), "--model", str(inputs["student"]), "--out", "{out}/depth"],
        "export": ["export", "--model", str(inputs["student"]), "--onnx", "{out}/onnx/student.onnx",
                   "--exporter", "torchscript"],
    }[name]


COMMANDS = ("precompute", "train", "infer", "export")


def _one_line(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize("name", COMMANDS)
def test_out_below_proc_or_a_plain_file_is_one_line(name, inputs, tmp_path, run_cli):
    plain = tmp_path / "plain"
    plain.write_text("a file, not a folder")
    for out, reason in (("/proc/kdcache-test", "No such file or directory"), (plain / "below", "is a file")):
        argv = [a.replace("{out}", str(out)) for a in command(name, inputs)]
        line = _one_line(*run_cli(*argv)[::2])
        assert line.startswith(f"error: {out}/") and reason in line, line
        assert "exporter" not in line  # export checks --onnx before trying (and failing with) every exporter
    assert not Path("/proc/kdcache-test").exists() and plain.read_text() == "a file, not a folder"


def test_any_other_os_error_is_one_line_too(run_cli, monkeypatch, tmp_path):
    """The CLI's last-resort handler: an OSError from any command is `error: <path>: <reason>`, exit 2."""
    import errno

    from kdcache.cli import teachers

    def denied():
        raise PermissionError(errno.EACCES, "Permission denied", "/some/where")

    monkeypatch.setattr(teachers, "_print_registry", denied)
    line = _one_line(*run_cli("teachers")[::2])
    assert line == "error: /some/where: Permission denied: choose a writable location"
    plain = tmp_path / "plain"
    plain.write_text("")
    code, _, err = run_cli("eval", "--split", "synth-test[:1]", "--model", "x", "--json", plain / "r.json")
    assert "is a file, not a folder" in _one_line(code, err)  # checked before evaluating anything


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _disk_usage(folder: Path) -> int:
    """Bytes the folder takes on a tmpfs: every file rounded up to 4 KiB pages."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


def on_small_disks(argv: list[str], size: int, work: Path, rerun_extra=()) -> dict:
    spec = work / "spec.json"
    spec.write_text(json.dumps({"argv": argv, "size": size, "work": str(work), "rerun_extra": list(rerun_extra)}))
    done = subprocess.run(["unshare", "-rm", sys.executable, str(HERE / "helpers" / "small_disks.py"), str(spec)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((work / "report.json").read_text())


needs_namespaces = pytest.mark.skipif(not shutil.which("unshare") or not _namespaces_work(),
                                      reason="needs unprivileged user namespaces (unshare -rm) to mount a tmpfs")


@pytest.mark.slow
@needs_namespaces
@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_and_full_disks(name, inputs, tmp_path, run_cli):
    reference = tmp_path / "reference"
    argv = command(name, inputs)
    code, _, err = run_cli(*[a.replace("{out}", str(reference)) for a in argv])
    assert code == 0, err
    # Train fills the disk at its second checkpoint (so the rerun resumes from the first); the others half-way.
    size = _disk_usage(reference) * 3 // 2 if name == "train" else _disk_usage(reference) // 2
    work = tmp_path / "disks"
    work.mkdir()
    report = on_small_disks(argv, size, work, ["--resume"] if name == "train" else [])

    ro = report["read_only"]
    assert ro["code"] == 2 and not ro["traceback"] and ro["left"] == [], ro
    assert ro["last_line"].startswith(f"error: {work / 'ro' / 'out'}/") and "Read-only file system" in ro["last_line"]

    full = report["full"]
    assert full["code"] == 2 and not full["traceback"], full
    assert full["last_line"].startswith(f"error: {work / 'full' / 'out'}") and "No space left on device" in \
        full["last_line"], full["last_line"]
    # The line names the output the user gave (--out, --onnx), never kdcache's staging copy inside it.
    given = next(a for a in argv if "{out}" in a).replace("{out}", str(work / "full" / "out"))
    assert full["last_line"].startswith(f"error: {given}: No space left on device"), full["last_line"]
    assert not any(".tmp" in p or p.endswith(".partial") for p in full["left"]), full["left"]
    assert report["rerun"]["code"] == 0, report["rerun"]
    CHECKS[name](reference, work / "after-full" / "out", work / "after-rerun" / "out")


def _check_precompute(reference: Path, failed: Path, rerun: Path) -> None:
    import zarr

    expected = zarr.open_group(str(reference / "store.zarr"), mode="r")
    group = next(iter(expected.group_keys()))
    for store, complete in ((failed / "store.zarr", False), (rerun / "store.zarr", True)):
        if not (store / "zarr.json").exists():
            assert not complete
            continue
        found = zarr.open_group(str(store), mode="r")
        if group not in found:
            continue
        done = np.asarray(found[f"{group}/shard_done"][:])
        assert done.all() or not complete
        for shard in np.flatnonzero(done):  # every shard marked done holds exactly the reference data
            rows = slice(shard * 8, shard * 8 + 8)
            for name in ("image", "gt"):
                assert np.array_equal(found[f"{group}/{name}"][rows], expected[f"{group}/{name}"][rows]), (store, name)


def _check_train(reference: Path, failed: Path, rerun: Path) -> None:
    from kdcache.train.checkpointing import read_state

    last = failed / "run" / "checkpoints" / "last"
    assert last.is_dir(), "the disk was meant to fill up at the second checkpoint, after the first"
    assert read_state(last)["step"] == 2 and load_student(last)[0] is not None
    assert sorted(p.name for p in (failed / "run" / "checkpoints").iterdir()) == ["last"]  # no staging leftovers
    expected = load_file(str(reference / "run" / "checkpoints" / "last" / "model.safetensors"))
    resumed = load_file(str(rerun / "run" / "checkpoints" / "last" / "model.safetensors"))
    assert expected.keys() == resumed.keys() and all(torch.equal(expected[k], resumed[k]) for k in expected)


def _check_infer(reference: Path, failed: Path, rerun: Path) -> None:
    expected = {p.relative_to(reference): p.read_bytes() for p in reference.rglob("*") if p.is_file()}
    partial = {p.relative_to(failed): p.read_bytes() for p in failed.rglob("*") if p.is_file()}
    assert 0 < len(partial) < len(expected)
    assert all(expected[path] == data for path, data in partial.items())  # every file whole, none torn
    assert {p.relative_to(rerun): p.read_bytes() for p in rerun.rglob("*") if p.is_file()} == expected


def _check_export(reference: Path, failed: Path, rerun: Path) -> None:
    from kdcache.evaluate.predictors import OnnxPredictor

    assert not failed.exists() or not any(p.is_file() for p in failed.rglob("*"))
    model = OnnxPredictor(rerun / "onnx" / "student.onnx")
    assert model.predict(np.zeros((32, 48, 3), np.uint8)).shape == (32, 48)


CHECKS = {"precompute": _check_precompute, "train": _check_train, "infer": _check_infer, "export": _check_export}

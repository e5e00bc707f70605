"""A training run is bound to the cache it read and owns its folder.

- The run records its cache's identity (config.json, the trainer state); `--resume` on a cache rebuilt at the
  same path with another teacher is refused in one line, while the same cache rebuilt the same way resumes.
- Two `kdcache train` runs on one `--out` never both run: the second is refused naming the first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.store import open_store
from kdcache.train import TrainConfig, train
from kdcache.train.checkpointing import read_state
from kdcache.train.reuse import FINISHED, UNTRAINED, variant_status

SPLITS = {"synth-train": 16, "synth-test": 4}


def run_config(cache, out, **extra) -> TrainConfig:
    raw = {"cache": str(cache), "out": str(out), "sources": {"labeled": "synth-train"}, "batch_size": 2,
           "steps": 4, "workers": 0, "log_every": 1, "checkpoint_every": 2,
           "variant": [{"mode": "kd-labeled", **TINY_STUDENT}], **extra}
    return TrainConfig.from_dict(raw)


def cli_args(cache, out, *extra) -> list:
    return ["train", "--student", TINY_STUDENT["student"], "--cache", cache, "--labeled", "synth-train",
            "--mode", "kd-labeled", "--out", out, "--batch-size", "2", "--workers", "0", "--log-every", "1",
            "--checkpoint-every", "2", "--no-pretrained", *extra]


def killed_after(monkeypatch, steps: int) -> None:
    from kdcache.train import variant as variant_module

    real_step, calls = variant_module.VariantTrainer.train_step, {"n": 0}

    def step(self, batch):
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(variant_module.VariantTrainer, "train_step", step)


def rebuild(cache: Path, teacher: str) -> None:
    shutil.rmtree(cache)
    build_cache(cache, SPLITS, teacher_name=teacher)


def test_a_run_records_the_identity_of_its_cache(tmp_path):
    cache = build_cache(tmp_path / "c.zarr", SPLITS)
    train(run_config(cache, tmp_path / "run"))
    identity = open_store(cache).identity(["synth-train"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["cache_identity"] == identity
    assert read_state(tmp_path / "run" / "checkpoints" / "last")["fingerprint"]["cache_identity"] == identity


def test_resume_on_a_cache_rebuilt_with_another_teacher_is_refused(tmp_path, monkeypatch, run_cli):
    cache, out = tmp_path / "c.zarr", tmp_path / "run"
    build_cache(cache, SPLITS, teacher_name="teacher-a")
    killed_after(monkeypatch, 3)  # stopped after its step-2 checkpoint
    assert run_cli(*cli_args(cache, out, "--steps", "8"))[0] != 0  # typer reports the interrupt
    monkeypatch.undo()
    assert read_state(out / "checkpoints" / "last")["step"] == 2
    before = (out / "metrics.jsonl").read_text()

    rebuild(cache, "teacher-b")
    code, _, err = run_cli(*cli_args(cache, out, "--steps", "8", "--resume"))
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"error: --resume: cache {cache} is not the one the run in {out} started on"), line
    assert "teacher 'teacher-b'" in line and "start a new --out" in line
    assert (out / "metrics.jsonl").read_text() == before  # nothing trained on the other teacher's targets
    assert json.loads((out / "config.json").read_text())["teacher"]["name"] == "teacher-a"

    # The same cache rebuilt the same way holds the same targets: the run continues.
    rebuild(cache, "teacher-a")
    code, _, err = run_cli(*cli_args(cache, out, "--steps", "8", "--resume"))
    assert code == 0, err
    assert read_state(out / "checkpoints" / "last")["step"] == 8


def test_a_finished_run_is_kept_only_for_the_cache_it_read(tmp_path):
    cache = tmp_path / "c.zarr"
    build_cache(cache, SPLITS, teacher_name="teacher-a")
    config = run_config(cache, tmp_path / "run")
    train(config)
    assert set(variant_status(config).values()) == {FINISHED}
    # Rebuilt with another teacher but carrying the old files' times (copied with `cp -p`, or a remote cache):
    # the identity, not the dates, says the targets changed.
    times = {p.relative_to(cache): p.stat() for p in cache.rglob("zarr.json")}
    rebuild(cache, "teacher-b")
    for path, stat in times.items():
        os.utime(cache / path, (stat.st_atime, stat.st_mtime))
    assert set(variant_status(config).values()) == {UNTRAINED}


def _spawn(cache, out, steps: int) -> subprocess.Popen:
    code = "import sys; from kdcache.cli.main import main; sys.exit(main(sys.argv[1:]))"
    args = [str(a) for a in cli_args(cache, out, "--steps", str(steps), "--overwrite")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_holder(out: Path, pid: int, timeout: float = 120) -> None:
    lock = out.parent / f".{out.name}.locks" / "train"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lock.is_file() and f'"pid": {pid},' in lock.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never took the run folder's lock")


@pytest.mark.slow
def test_two_train_runs_on_one_out_never_both_run(tmp_path):
    cache, out = build_cache(tmp_path / "c.zarr", SPLITS), tmp_path / "run"
    first = _spawn(cache, out, steps=400)
    try:
        _wait_for_holder(out, first.pid)
        second = _spawn(cache, out, steps=2)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "Traceback" not in err, err
        line = err.strip().splitlines()[-1]
        assert f"another kdcache train (pid {first.pid} on" in line and f"is writing {out}" in line, line
        assert first.poll() is None  # the first run goes on undisturbed

        # A killed holder's lock is taken over: the next run goes ahead (and says so).
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        third = _spawn(cache, out, steps=2)
        _, err = third.communicate(timeout=300)
        assert third.returncode == 0, err
        assert f"taking over the lock of pid {first.pid}" in err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train"]
    assert steps == [1, 2]  # the third run's lines only: --overwrite started the log afresh, nothing mixed in


def test_adding_a_split_keeps_the_identity_runs_record_and_the_manifest_consistent(tmp_path, run_cli):
    out = tmp_path / "c.zarr"
    common = ("precompute", "--teacher", "none", "--out", out, "--resolution", "24x32", "--workers", "0",
              "--shard-size", "4", "--split", "synth-train[:8]")
    assert run_cli(*common)[0] == 0
    before = open_store(out)
    assert run_cli(*common, "--split", "synth-test[:4]")[0] == 0
    after = open_store(out)  # its stored identity is checked against its contents on opening
    assert after.splits == ["synth-train[:8]", "synth-test[:4]"]
    split_identity = before.manifest["identity"]["splits"]["synth-train[:8]"]
    assert after.manifest["identity"]["splits"]["synth-train[:8]"] == split_identity
    assert after.identity(["synth-train[:8]"]) == before.identity(["synth-train[:8]"])
    assert after.identity(["synth-train[:8]", "synth-test[:4]"]) != before.identity(["synth-train[:8]"])
    # A store made with other options is another store, even for the same split.
    other = tmp_path / "o.zarr"
    assert run_cli(*[other if a == out else "24x24" if a == "24x32" else a for a in common])[0] == 0
    assert open_store(other).identity(["synth-train[:8]"]) != before.identity(["synth-train[:8]"])

"""Two-process DDP training under torchrun (gloo on CPU), through the real CLI and a TOML config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.train_support import TINY_STUDENT, build_cache


@pytest.mark.slow
def test_torchrun_two_processes_share_the_cache(tmp_path):
    cache = build_cache(tmp_path / "tiny.zarr", {"synth-train": 32, "synth-aux": 16, "synth-test": 8})
    config = tmp_path / "ddp.toml"
    config.write_text(
        f'cache = "{cache}"\nout = "{tmp_path / "run"}"\nval = "synth-test"\nbatch_size = 4\nepochs = 1\n'
        'workers = 0\nlog_every = 1\npretrained = false\n'
        '[sources]\nlabeled = "synth-train"\naux = "synth-aux"\n'
        f'[[variant]]\nmode = "kd-labeled-aux"\nstudent = "{TINY_STUDENT["student"]}"\n'
        f'student_overrides = {{ width = {TINY_STUDENT["student_overrides"]["width"]} }}\n'
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "kdcache.cli.main", "train", "--config", str(config)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    # 32 labeled samples, 2 per batch per rank (aux ratio 0.5), 2 ranks -> 8 steps make one epoch.
    assert saved["world_size"] == 2 and saved["steps_per_epoch"] == 8 and saved["total_steps"] == 8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 9))
    assert (run / "checkpoints/best/model.safetensors").is_file()
    assert (run / "checkpoints/last/trainer.json").is_file()

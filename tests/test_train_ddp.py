"""Two-process DDP training under torchrun (gloo on CPU), through the real CLI and a TOML config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from helpers.train_support import TINY_STUDENT, build_cache

# `kdcache train` under torchrun, with each rank writing its student's weights before training and after it.
RANK_WEIGHTS = """
import os, sys
from safetensors.torch import save_file
import kdcache.train.loop as loop

def dump(run, when):
    for i, trainer in enumerate(run.trainers):
        state = {name: p.detach().cpu().contiguous() for name, p in trainer.student.named_parameters()}
        save_file(state, os.path.join(os.environ["RANK_WEIGHTS"], f"{when}-variant{i}-rank{run.ctx.rank}.safetensors"))

init, results = loop.Run.__init__, loop.Run._results
loop.Run.__init__ = lambda self, *a: (init(self, *a), dump(self, "start"))[0]
loop.Run._results = lambda self, wall: (dump(self, "end"), results(self, wall))[1]
from kdcache.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


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
    weights = tmp_path / "rank-weights"
    weights.mkdir()
    script = tmp_path / "train_dumping_weights.py"
    script.write_text(RANK_WEIGHTS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0", "RANK_WEIGHTS": str(weights)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(script), "train", "--config", str(config)]
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
    # DDP averages the gradients, so both ranks take the same steps: their weights agree at the end, bit for bit up
    # to the all-reduce's float sums, and training moved them (a rank training alone would drift away).
    from safetensors.torch import load_file

    start, end = (load_file(weights / f"{when}-variant0-rank0.safetensors") for when in ("start", "end"))
    other = load_file(weights / "end-variant0-rank1.safetensors")
    assert set(end) == set(other) and len(end) > 10
    for name in end:
        torch.testing.assert_close(other[name], end[name], rtol=1e-6, atol=1e-7)
    assert sum(float((end[n] - start[n]).abs().max()) > 1e-4 for n in end) > len(end) // 2

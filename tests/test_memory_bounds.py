"""Settings this machine cannot hold are refused in one line before any work starts, and leave nothing behind.

The machine's memory is fixed per test (`available_host` patched), so every outcome is the same on any machine
and no test ever tries the allocation it guards against.
"""

from __future__ import annotations

import os

import pytest
import torch
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache import memory_budget
from kdcache.errors import KdcacheError
from kdcache.memory_budget import Need, available_host, check_fits

GIB = 2**30


def machine(monkeypatch, host: int, device: int | None = None) -> None:
    monkeypatch.setattr(memory_budget, "available_host", lambda: host)
    monkeypatch.setattr(memory_budget, "available_device", lambda _device: device)


def refusal(code: int, err: str) -> str:
    assert code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


def precompute_args(out, *extra) -> list:
    return ["precompute", "--teacher", "none", "--split", "synth-train[:64]", "--out", out, *extra]


@pytest.mark.parametrize("setting, option", [
    (("--resolution", "20000x20000"), "--resolution"),
    (("--teacher", "emulated:0", "--features", "default", "--feature-grid", "100000x100000"), "--feature-grid"),
])
def test_the_probes_settings_are_refused_before_anything_is_written(tmp_path, monkeypatch, run_cli, setting, option):
    machine(monkeypatch, 64 * GIB)
    out = tmp_path / "c.zarr"
    line = refusal(*run_cli(*precompute_args(out, *setting))[::2])
    assert line.startswith("error: kdcache precompute needs at least ") and "64.0 GiB memory available" in line
    assert line.endswith(f"lower {option} (or --shard-size, --writer-threads)") or f"lower {option} (" in line, line
    assert sorted(os.listdir(tmp_path)) == []  # no store, not even a lock folder: nothing stamped with the size


def test_a_refused_run_leaves_the_normal_rerun_free(tmp_path, monkeypatch, run_cli):
    out = tmp_path / "c.zarr"
    small = ("--resolution", "96x128", "--split", "synth-train[:8]", "--workers", "0", "--shard-size", "8")
    machine(monkeypatch, 2**20)  # 1 MiB: eight 96x128 samples with their GT do not fit
    line = refusal(*run_cli("precompute", "--teacher", "none", "--out", out, *small)[::2])
    assert "1.0 MiB memory available: lower --resolution" in line
    assert not out.exists()
    monkeypatch.undo()
    code, _, err = run_cli("precompute", "--teacher", "none", "--out", out, "--resolution", "24x32",
                           "--split", "synth-train[:8]", "--workers", "0", "--shard-size", "8")
    assert code == 0, err


def test_a_batch_too_big_for_the_machine_is_refused_before_training(tmp_path, monkeypatch, run_cli):
    cache = build_cache(tmp_path / "c.zarr", {"synth-train": 8})
    machine(monkeypatch, 16 * 2**20)
    out = tmp_path / "run"
    line = refusal(*run_cli("train", "--student", TINY_STUDENT["student"], "--cache", cache, "--labeled",
                            "synth-train", "--mode", "gt-only", "--out", out, "--steps", "1", "--batch-size", "2048",
                            "--workers", "0", "--no-pretrained")[::2])
    assert line.startswith("error: kdcache train needs at least ") and line.endswith("lower --batch-size"), line
    assert "a batch of 2048 at 32x48" in line
    assert not (out / "checkpoints").exists() and not (out / "config.json").exists()


def test_device_needs_are_held_against_the_gpu_and_host_needs_against_the_host(monkeypatch):
    cuda = torch.device("cuda", 0)
    needs = [Need("host side", 3 * GIB, "--workers"), Need("device side", 5 * GIB, "--batch-size", on_device=True)]
    machine(monkeypatch, host=4 * GIB, device=6 * GIB)
    check_fits(needs, cuda, "kdcache x")  # 3 <= 4 on the host, 5 <= 6 on the GPU
    machine(monkeypatch, host=4 * GIB, device=4 * GIB)
    with pytest.raises(KdcacheError, match=r"at least 5.0 GiB .* 4.0 GiB free on cuda:0: lower --batch-size"):
        check_fits(needs, cuda, "kdcache x")
    machine(monkeypatch, host=7 * GIB)  # on the CPU both sides are the host's: 8 > 7
    with pytest.raises(KdcacheError, match=r"at least 8.0 GiB .*7.0 GiB memory available: lower --batch-size"):
        check_fits(needs, torch.device("cpu"), "kdcache x")


def test_available_host_memory_is_what_the_kernel_reports():
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < available_host() <= total

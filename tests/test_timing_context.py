"""Timing figures carry their context: every printed latency or FPS comes with the load average and the cores,
and a warning when the machine is busier than it has cores (kdcache.timing)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers.eval_fixtures import SPLIT, save_tiny_student

from kdcache.timing import MachineLoad, machine_load, warn_if_busy

BUSY, IDLE = MachineLoad(9.5, 2), MachineLoad(0.25, 2)


def test_the_machine_load_is_the_load_average_and_the_cores(monkeypatch):
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (3.456, 2.0, 1.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert machine_load() == MachineLoad(3.46, 4) and not machine_load().busy
    assert BUSY.busy and not IDLE.busy and not MachineLoad(None, 2).busy
    assert BUSY.describe() == "load average 9.50 on 2 cores (busier than its cores)"
    assert MachineLoad.from_dict(BUSY.as_dict()) == BUSY


@pytest.mark.parametrize("load", [BUSY, IDLE])
def test_a_warning_only_when_busier_than_the_cores(load, capsys):
    warn_if_busy(load)
    assert ("warning:" in capsys.readouterr().err) == load.busy


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return save_tiny_student(tmp_path_factory.mktemp("timing") / "run")


@pytest.mark.parametrize("load", [BUSY, IDLE])
def test_eval_prints_its_latency_with_the_load_it_was_timed_at(load, run, run_cli, tmp_path, monkeypatch):
    import kdcache.evaluate.efficiency as efficiency

    monkeypatch.setattr(efficiency, "machine_load", lambda: load)
    code, out, err = run_cli("eval", "--split", SPLIT, "--size", "48x64", "--model", run, "--throughput-batch", "2",
                             "--json", tmp_path / "e.json")
    assert code == 0, err
    assert "Latency (ms)" in out and f"timed at {load.describe()}" in out
    assert ("warning:" in err) == load.busy
    row = json.loads((tmp_path / "e.json").read_text())["results"][0]
    assert row["efficiency"]["machine"] == load.as_dict()


def test_infer_prints_its_speed_with_the_load(run, run_cli, tmp_path, monkeypatch):
    import kdcache.infer

    monkeypatch.setattr(kdcache.infer, "machine_load", lambda: BUSY)
    Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(tmp_path / "a.png")
    code, out, err = run_cli("infer", tmp_path / "a.png", "--model", run, "--out", tmp_path / "out", "-f", "npy")
    assert code == 0, err
    assert "img/s" in out and f"speeds timed at {BUSY.describe()}" in out and "warning:" in err


def test_the_export_table_names_the_load_its_latencies_were_timed_at():
    from rich.console import Console

    from kdcache.cli.export import export_table

    report = {"onnx": "s.onnx", "size_mb": 1.0, "exporter": "dynamo", "opset": 18, "dynamic_axes": [],
              "output_space": "depth", "parity_rel_error": 1e-7, "input_size": [48, 64], "onnx_threads": 2,
              "onnx_latency_ms": 3.0, "onnx_fps": 333.0, "onnx_repeats": 50, "torch_threads": 2,
              "torch_latency_ms": 4.0, "machine": BUSY.as_dict()}
    console = Console(width=200, record=True)
    console.print(export_table(report))
    [row] = [line for line in console.export_text().splitlines() if "timed at" in line]
    assert BUSY.describe() in row

"""bench/train_repro.py's comparison of two runs (made-up runs: no training)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
import zarr
from safetensors.torch import save_file

_SPEC = importlib.util.spec_from_file_location(
    "train_repro", Path(__file__).resolve().parents[1] / "bench" / "train_repro.py")
repro = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(repro)


def _run(folder: Path, step_losses, weight: torch.Tensor, gt: np.ndarray) -> Path:
    checkpoint = folder / "run" / "checkpoints" / "last"
    checkpoint.mkdir(parents=True)
    rows = [{"kind": "train", "step": i + 1, "loss": loss} for i, loss in enumerate(step_losses)]
    rows.append({"kind": "val", "step": len(step_losses), "abs_rel": 0.3})
    (folder / "run" / "metrics.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    save_file({"w": weight, "bn.running_var": torch.ones(3)}, checkpoint / "model.safetensors")
    store = zarr.open_group(str(folder / "store.zarr"), mode="w")
    store.create_group("split").create_array("gt", data=gt)
    (folder / "facts.json").write_text(json.dumps({"store": str(folder / "store.zarr")}))
    return folder


def test_identical_runs_compare_equal_and_any_difference_is_reported(tmp_path, capsys):
    gt, weight = np.arange(6, dtype="float32").reshape(2, 3), torch.tensor([1.0, 2.0, 2.0])
    a = _run(tmp_path / "a", [4.5, 4.25], weight, gt)
    assert repro.compare(a, _run(tmp_path / "b", [4.5, 4.25], weight.clone(), gt.copy())) == 0
    assert "first step whose loss differs: None; weights bit-identical: True" in capsys.readouterr().out

    other = _run(tmp_path / "c", [4.5, 4.26], torch.tensor([1.0, 2.0, 2.3]), gt + np.eye(2, 3, dtype="float32"))
    assert repro.compare(a, other) == 1
    out = capsys.readouterr().out
    assert "first step whose loss differs: 2" in out and "arrays differ: split/gt" in out
    assert "weights bit-identical: False (relative distance 1.00e-01)" in out  # |0.3| / |(1, 2, 2)| = 0.1


def test_runs_of_different_lengths_are_refused(tmp_path, capsys):
    gt, weight = np.zeros((1, 2), dtype="float32"), torch.zeros(2)
    short = _run(tmp_path / "a", [1.0], weight, gt)
    assert repro.compare(short, _run(tmp_path / "b", [1.0, 0.5], weight, gt)) == 2
    assert "trained 1 and 2 steps" in capsys.readouterr().out

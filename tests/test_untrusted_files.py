"""Files a user did not write themselves never run code and never crash kdcache with a traceback.

Planted pickles (`trainer.pt`, `pytorch_model.bin`) write a marker file when unpickled: the marker must never
appear. Crafted `student.json` specs are refused before anything big is built.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.errors import KdcacheError
from kdcache.students import create_student, load_student, save_student
from kdcache.train import TrainConfig, train


class _Planted:
    """Unpickling this runs `exec`: it writes the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pickle ran')",)


def plant_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 3, "payload": _Planted(marker)}, path)
    return path


def one_line_error(code: int, err: str) -> str:
    """The error line that ends `err` (log lines may come before it); no traceback anywhere."""
    assert code == 2, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: "), err
    return err.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_cache(tmp_path_factory.mktemp("cache") / "tiny.zarr", {"synth-train": 8, "synth-test": 4},
                       teacher=False)


def train_args(cache, out):
    return ("train", "--student", TINY_STUDENT["student"], "--cache", cache, "--labeled", "synth-train",
            "--mode", "gt-only", "--out", out, "--steps", "2", "--batch-size", "2", "--workers", "0", "--no-pretrained")


# --- resume state -------------------------------------------------------------------------------------------
def test_resume_never_unpickles_a_planted_trainer_pt(cache, tmp_path, run_cli):
    marker = tmp_path / "marker"
    plant_pickle(tmp_path / "run" / "checkpoints" / "last" / "trainer.pt", marker)
    code, _, err = run_cli(*train_args(cache, tmp_path / "run"), "--resume")
    assert "never loads" in one_line_error(code, err)
    assert not marker.exists()


def test_resume_state_is_stored_without_pickle_and_round_trips(cache, tmp_path):
    from kdcache.train.checkpointing import read_state

    raw = {"cache": cache, "out": str(tmp_path / "run"), "sources": {"labeled": "synth-train"}, "batch_size": 2,
           "steps": 2, "workers": 0, "variant": [{"mode": "gt-only", "ema": 0.9, **TINY_STUDENT}]}
    train(TrainConfig.from_dict(raw))
    last = tmp_path / "run" / "checkpoints" / "last"
    assert sorted(p.name for p in last.iterdir()) == ["model.safetensors", "student.json", "trainer.json",
                                                       "trainer.safetensors"]
    state = read_state(last)
    assert state["step"] == 2 and isinstance(state["variant"]["optimizer"]["state"], dict)
    assert all(isinstance(k, int) for k in state["variant"]["optimizer"]["state"])
    assert state["variant"]["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert state["rng"][0]["cpu"].dtype == torch.uint8 and state["variant"]["ema"]["updates"] == 2


@pytest.mark.parametrize("damage, message", [
    (lambda last: (last / "trainer.json").write_text("{not json"), "cannot read"),
    (lambda last: (last / "trainer.json").write_text(json.dumps({"format": "something-else"})), "not a kdcache"),
    (lambda last: _edit_header(last, kdcache_version="0.0.1"), "written by kdcache 0.0.1"),
    (lambda last: _edit_header(last, state={"step": 2}), "not a complete"),
    (lambda last: (last / "trainer.safetensors").write_bytes(b"\x00" * 20), "cannot read"),
], ids=["garbage", "foreign-json", "other-version", "incomplete", "damaged-tensors"])
def test_a_foreign_or_other_version_trainer_state_is_one_line(cache, tmp_path, run_cli, damage, message):
    run = tmp_path / "run"
    assert run_cli(*train_args(cache, run))[0] == 0
    damage(run / "checkpoints" / "last")
    code, _, err = run_cli(*train_args(cache, run), "--resume")
    assert message in one_line_error(code, err)


def _edit_header(last: Path, **changes) -> None:
    header = json.loads((last / "trainer.json").read_text())
    (last / "trainer.json").write_text(json.dumps({**header, **changes}))


@pytest.mark.slow
def test_demo_never_unpickles_a_planted_teacher_run(tmp_path, run_cli):
    out, marker = tmp_path / "demo", tmp_path / "marker"
    (out / "runs" / "teacher").mkdir(parents=True)
    (out / "runs" / "teacher" / "config.json").write_text("{}")  # makes the demo resume this run by itself
    plant_pickle(out / "runs" / "teacher" / "checkpoints" / "last" / "trainer.pt", marker)
    code, _, err = run_cli("demo", "--scale", "micro", "--out", out, "--workers", "0")
    assert "never loads" in one_line_error(code, err)
    assert not marker.exists()


# --- HF teachers ------------------------------------------------------------------------------------------
def test_hf_folder_with_a_pickled_bin_is_refused_in_one_line(tmp_path, run_cli):
    from helpers.tiny_models import make_tiny_dpt

    folder = make_tiny_dpt(tmp_path / "teacher")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    plant_pickle(folder / "pytorch_model.bin", marker)
    code, _, err = run_cli("teachers", f"hf:{folder}")
    assert "only safetensors weights are loaded" in one_line_error(code, err)
    assert not marker.exists()


def test_a_cached_hub_snapshot_with_only_a_pickled_bin_is_refused_in_one_line(tmp_path, monkeypatch, run_cli):
    from huggingface_hub import constants
    from helpers.tiny_models import make_tiny_dpt

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--Intel--dpt-large"
    snapshot = make_tiny_dpt(repo / "snapshots" / commit)
    (snapshot / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    plant_pickle(snapshot / "pytorch_model.bin", marker)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    code, _, err = run_cli("teachers", "dpt-large")
    assert "only safetensors weights are loaded" in one_line_error(code, err)
    assert not marker.exists()


# --- student.json -----------------------------------------------------------------------------------------
@pytest.fixture
def student_dir(tmp_path):
    model = create_student(TINY_STUDENT["student"], **TINY_STUDENT["student_overrides"])
    return save_student(model, tmp_path / "student", {"output_space": "depth"})


def _edit_spec(directory: Path, edit) -> None:
    description = json.loads((directory / "student.json").read_text())
    edit(description)
    (directory / "student.json").write_text(json.dumps(description))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["config"]["spec"].update(width=200_000), "width"),
    (lambda d: d["config"]["spec"].update(encoder="vit_giant_patch14_224"), "does not match"),
    (lambda d: d["config"]["spec"].update(out_indices=[99]), "out_indices"),
    (lambda d: d["config"]["spec"].update(decoder="no-such-decoder"), "unknown decoder"),
    (lambda d: d["config"]["spec"].update(frobnicate=1), "frobnicate"),
    (lambda d: d["config"]["spec"].update(pretrained=True), "unknown key.s. pretrained"),
    (lambda d: d.pop("config"), "config"),
    (lambda d: d["config"].pop("student"), "student"),
    (lambda d: d.update(config=[1, 2]), "config"),
    (lambda d: d["meta"].update(output_space="inverse"), "output_space"),
], ids=["huge-width", "giant-encoder", "bad-out-indices", "unknown-decoder", "unknown-field", "pretrained", "no-config",
        "no-student", "config-not-a-table", "bad-output-space"])
def test_a_crafted_student_json_is_refused_before_building(student_dir, edit, message, run_cli):
    _edit_spec(student_dir, edit)
    with pytest.raises(KdcacheError, match=message) as err:
        load_student(student_dir)
    assert "\n" not in str(err.value)
    code, _, stderr = run_cli("eval", "--split", "synth-test[:1]", "--model", student_dir, "--no-efficiency")
    one_line_error(code, stderr)


def _onnx_identity(path: Path, shape: list) -> Path:
    """A valid .onnx that is no depth model: it passes its input of `shape` (names: dynamic sides) through."""
    import onnx
    from onnx import TensorProto, helper

    tensors = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", tensors[:1], tensors[1:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("shape", [["batch", 3, "height"], ["height", "width"], ["batch", 1, "height", "width"]],
                         ids=["rank-3", "rank-2", "one-channel"])
def test_an_onnx_that_is_no_depth_model_is_one_line(shape, tmp_path, run_cli):
    import onnxruntime  # noqa: F401  (a dependency: a broken install fails here)
    model = _onnx_identity(tmp_path / "other.onnx", shape)
    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    code, _, err = run_cli("infer", tmp_path / "a.png", "--model", model, "--out", tmp_path / "out")
    line = one_line_error(code, err)
    assert line.startswith(f"error: {model} takes or gives the wrong tensors for a depth model") and "export" in line
    code, _, err = run_cli("eval", "--split", "synth-test[:1]", "--model", model, "--no-efficiency")
    assert "wrong tensors" in one_line_error(code, err)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc/self/status")
@pytest.mark.parametrize("change", [{"encoder": "vit_giant_patch14_224"}, {"width": 3000}], ids=["giant", "wide"])
def test_a_crafted_spec_allocates_nothing_big(student_dir, change):
    """Peak memory of a fresh process that loads the crafted checkpoint: the real giant would take GBs."""
    _edit_spec(student_dir, lambda d: d["config"]["spec"].update(change))
    # VmHWM is this process's own peak (ru_maxrss would include the forking pytest process's size).
    code = ("import sys\n"
            "from kdcache.errors import KdcacheError\n"
            "from kdcache.students import load_student\n"
            "try:\n    load_student(sys.argv[1])\nexcept KdcacheError as err:\n    print('refused:', err)\n"
            "status = open('/proc/self/status').read()\n"
            "print('peak_mb', int(status.split('VmHWM:')[1].split()[0]) / 1024)\n")
    done = subprocess.run([sys.executable, "-c", code, str(student_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: " in done.stdout and "does not match" in done.stdout
    peak = float(done.stdout.split("peak_mb")[1])
    assert peak < 1500, peak  # torch + timm alone: ~0.75 GB; a 1 B-parameter ViT: > 4 GB


def test_header_shapes_are_compared_with_the_spec(student_dir):
    """A spec edited to a nearby architecture is caught from the safetensors header, before any weights load."""
    _edit_spec(student_dir, lambda d: d["config"]["spec"].update(width=12))
    with pytest.raises(KdcacheError, match="with another shape"):
        load_student(student_dir)


def test_a_lone_safetensors_file_with_a_crafted_header_is_refused(student_dir, tmp_path):
    from safetensors import safe_open

    with safe_open(str(student_dir / "model.safetensors"), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = handle.metadata()
    description = json.loads(metadata["kdcache_student"])
    description["config"]["spec"]["width"] = 10**9
    save_file(tensors, str(tmp_path / "lone.safetensors"),
              metadata={**metadata, "kdcache_student": json.dumps(description)})
    with pytest.raises(KdcacheError, match="width"):
        load_student(tmp_path / "lone.safetensors")

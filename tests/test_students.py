"""The student zoo: every preset builds, handles any input size, round-trips through a checkpoint."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch

from helpers.offline_hub import save_timm_weights, unreachable_hub  # noqa: F401  (a fixture)
from safetensors.torch import load_file

from kdcache.errors import KdcacheError
from kdcache.students import (DECODERS, complexity, create_student, list_decoders, list_students, load_student,
                              resolve_spec, save_student, student_complexity)
from kdcache.students.checkpoint import DESCRIPTION, WEIGHTS

TINY = "test_efficientnet+nnconv5"  # timm's 82 k-parameter test encoder: milliseconds per forward


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@pytest.mark.parametrize("name", list_students())
def test_preset(name, tmp_path):
    """One test per preset (each big model is built once): shapes at two sizes, positivity, features,
    gradients reaching every parameter (DDP needs that), save/load round trip."""
    torch.manual_seed(0)
    model = create_student(name)
    assert model.config["student"] == name

    model.train()
    x = torch.rand(2, 3, 64, 80)
    depth, features = model(x, return_features=True)
    assert depth.shape == (2, 1, 64, 80)
    assert [f.shape[1] for f in features] == model.feature_channels
    assert [f.shape[-2:] for f in features] == [(ceil_div(64, r), ceil_div(80, r)) for r in model.feature_reductions]
    (depth.mean() + sum(f.mean() for f in features)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters outside the graph: {no_grad[:3]}"

    model.eval()
    with torch.no_grad():
        odd = model(torch.rand(2, 3, 60, 76))  # not a multiple of the encoder stride
        assert odd.shape == (2, 1, 60, 76)
        assert torch.isfinite(odd).all() and (odd > 0).all()
        # an untrained student predicts about init_depth metres everywhere
        assert odd.mean().item() == pytest.approx(2.5, abs=0.25)

        directory = save_student(model, tmp_path / "ckpt", {"output_space": "depth", "epoch": 3})
        loaded, meta = load_student(directory)
        assert meta == {"output_space": "depth", "epoch": 3}
        assert loaded.config == model.config and not loaded.training
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_overrides_and_free_combinations_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_student("mobilevit-xxs", encoder="test_efficientnet", decoder="hu", width=8, init_depth=4.0)
    assert model.config["spec"]["decoder"] == "hu" and model.config["overrides"]["width"] == 8
    combo = create_student(TINY, width=8, out_indices=[1, 2, 3, 4])
    assert combo.config["spec"]["encoder"] == "test_efficientnet"
    assert combo.feature_reductions == [4, 8, 16, 32] and len(combo.feature_channels) == 4
    x = torch.rand(1, 3, 33, 47)
    with torch.no_grad():
        assert model.eval()(x).mean().item() == pytest.approx(4.0, abs=0.3)
        save_student(model, tmp_path / "a", {"output_space": "disparity"})
        loaded, meta = load_student(tmp_path / "a" / WEIGHTS)  # the .safetensors file itself
        assert meta["output_space"] == "disparity"
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("decoder", list_decoders())
def test_every_decoder_on_a_tiny_encoder(decoder):
    model = create_student(f"test_efficientnet+{decoder}", width=8).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 53)).shape == (1, 1, 37, 53)
    assert DECODERS.info(decoder)["description"]


def test_hu_student_has_about_1_7_million_parameters():
    """Hu et al.: MobileNetV2 cut after its 160-channel stage + MFF decoder, 1.7 M parameters."""
    params = student_complexity("hu-mobilenetv2", (64, 80))["params"]
    assert 1.55e6 < params < 1.85e6
    assert resolve_spec("hu-mobilenetv2").drop_last_block


def test_complexity_counts_macs_exactly():
    conv = torch.nn.Conv2d(3, 8, 1, bias=False)
    cost = complexity(conv, (4, 5))
    assert cost["params"] == 24
    assert cost["flops"] == 2 * 3 * 8 * 4 * 5 and cost["gmacs"] == pytest.approx(3 * 8 * 20 / 1e9)


def test_meta_device_complexity_matches_a_real_model():
    real = create_student(TINY)
    assert student_complexity(TINY, (64, 96)) == complexity(real, (64, 96))
    # MACs grow with the pixel count
    small, large = student_complexity(TINY, (64, 96)), student_complexity(TINY, (128, 192))
    assert large["gmacs"] == pytest.approx(4 * small["gmacs"], rel=0.1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="mobilevit", colour="red"), "unknown student option"),
    (dict(name="mobilevitt"), "Did you mean 'mobilevit'"),
    (dict(name="nonet+minidpt"), "unknown timm encoder 'nonet'"),
    (dict(name="resnet18+unet"), "unknown decoder 'unet'"),
    (dict(name="resnet18+minidpt", drop_last_block=True), "drop_last_block is only supported"),
    (dict(name="mobilevit", width=0), "width must be an integer"),
    (dict(name="mobilevit", init_depth=0.0001), "init_depth > min_depth > 0"),
])
def test_student_errors(kwargs, message):
    with pytest.raises(KdcacheError, match=message):
        create_student(**kwargs)


# --- pretrained weights: local first, refused in one line when they cannot be had, never hang -------------------

def test_pretrained_loads_and_records_the_weights_in_the_local_hub_cache(tmp_path, monkeypatch):
    import huggingface_hub

    state, weights_file = save_timm_weights(tmp_path, "test_efficientnet")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    model = create_student(TINY, pretrained=True)  # offline (conftest): the cache alone must do
    loaded = model.encoder.body.state_dict()
    shared = [key for key in loaded if key in state]
    assert len(shared) > 10
    for key in shared:
        torch.testing.assert_close(loaded[key], state[key], rtol=0, atol=0)
    assert model.encoder.initial_weights == {"init": "imagenet", "source": "timm/test_efficientnet.r160_in1k",
                                             "file": str(weights_file)}
    assert create_student(TINY).encoder.initial_weights == {"init": "scratch"}


def test_pretrained_is_found_under_hf_home_in_a_fresh_process(tmp_path):
    """HF_HOME as a user sets it (read when huggingface_hub is imported), not a patched constant."""
    state, _ = save_timm_weights(tmp_path / "hub", "test_efficientnet")
    script = ("import json, sys; from safetensors.torch import save_file; from kdcache.students import create_student;"
              f"m = create_student({TINY!r}, pretrained=True);"
              "save_file(m.encoder.body.state_dict(), sys.argv[1]); print(json.dumps(m.encoder.initial_weights))")
    env = {**os.environ, "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "loaded.safetensors")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["init"] == "imagenet"
    loaded = load_file(str(tmp_path / "loaded.safetensors"))
    assert all(torch.equal(loaded[key], state[key]) for key in loaded if key in state)


def test_pretrained_offline_without_weights_is_refused_naming_the_opt_out(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(KdcacheError) as err:
        create_student(TINY, pretrained=True)
    message = str(err.value)
    assert "\n" not in message and "--no-pretrained" in message and "HF_HUB_OFFLINE" in message
    assert "hf download timm/test_efficientnet.r160_in1k" in message


def test_pretrained_with_an_unreachable_hub_is_refused_within_seconds(unreachable_hub):
    """The hub client alone would retry the silent endpoint for most of a minute."""
    started = time.monotonic()
    with pytest.raises(KdcacheError, match="did not answer.*--no-pretrained"):
        create_student(TINY, pretrained=True)
    assert time.monotonic() - started < 20  # the probe waits 3 s; generous for a loaded CI machine


# --- checkpoints ----------------------------------------------------------------------------------------------------

def test_save_is_atomic_and_overwrites_cleanly(tmp_path):
    model = create_student(TINY)
    target = tmp_path / "run" / "checkpoints" / "last"
    save_student(model, target, {"output_space": "depth", "step": 1})
    save_student(model, target, {"output_space": "depth", "step": 2})
    assert sorted(p.name for p in target.parent.iterdir()) == ["last"]  # no temp or retired copies left
    assert sorted(p.name for p in target.iterdir()) == [WEIGHTS, DESCRIPTION]
    assert json.loads((target / DESCRIPTION).read_text())["meta"]["step"] == 2
    # a run dir resolves to checkpoints/best, then checkpoints/last
    assert load_student(tmp_path / "run")[1]["step"] == 2
    save_student(model, tmp_path / "run" / "checkpoints" / "best", {"output_space": "depth", "step": 9})
    assert load_student(tmp_path / "run")[1]["step"] == 9


def test_lone_safetensors_file_is_self_describing(tmp_path):
    model = create_student(TINY)
    save_student(model, tmp_path / "c", {"output_space": "disparity"})
    (tmp_path / "c" / DESCRIPTION).unlink()
    loaded, meta = load_student(tmp_path / "c" / WEIGHTS)
    assert meta["output_space"] == "disparity" and loaded.config == model.config


def test_checkpoint_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(KdcacheError, match="does not exist"):
        load_student(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KdcacheError, match="no student checkpoint"):
        load_student(tmp_path / "empty")
    (tmp_path / "weights.pt").write_bytes(b"\x80\x04pickle")
    with pytest.raises(KdcacheError, match="not a kdcache student checkpoint"):
        load_student(tmp_path / "weights.pt")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(KdcacheError, match="not a kdcache student checkpoint"):
        load_student(tmp_path / "foreign.safetensors")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / WEIGHTS).write_bytes(b"garbage")
    (tmp_path / "broken" / DESCRIPTION).write_text("{not json")
    with pytest.raises(KdcacheError, match="cannot read student checkpoint"):
        load_student(tmp_path / "broken")
    model = create_student(TINY)
    for variant in ("a", "b"):
        save_student(model, tmp_path / "sweep" / variant / "checkpoints" / "last", {"output_space": "depth"})
    with pytest.raises(KdcacheError, match=r"several student variants \(a, b\)"):
        load_student(tmp_path / "sweep")
    with pytest.raises(KdcacheError, match="output_space"):
        save_student(model, tmp_path / "x", {"output_space": "metres"})


def test_checkpoints_survive_preset_changes(tmp_path, monkeypatch):
    """Rebuilt from the stored resolved spec, not from today's preset defaults."""
    from kdcache.students import STUDENTS, StudentSpec

    model = create_student("mobilevit-xxs", encoder="test_efficientnet")
    save_student(model, tmp_path / "c", {"output_space": "depth"})
    monkeypatch.setitem(STUDENTS._factories, "mobilevit-xxs", lambda: StudentSpec("resnet18", "nnconv5", width=99))
    loaded, _ = load_student(tmp_path / "c")
    assert loaded.config == model.config
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


def test_mismatched_weights_are_refused(tmp_path):
    save_student(create_student(TINY), tmp_path / "c", {"output_space": "depth"})
    description = json.loads((tmp_path / "c" / DESCRIPTION).read_text())
    description["config"]["spec"]["width"] = 8  # claims another architecture than the weights hold
    (tmp_path / "c" / DESCRIPTION).write_text(json.dumps(description))
    with pytest.raises(KdcacheError, match="does not match student"):
        load_student(tmp_path / "c")


# --- export-friendliness and CLI --------------------------------------------------------------------------------------

def test_onnx_export_with_dynamic_size_matches_torch(tmp_path):
    """Padding/cropping is shape arithmetic only: one export serves sizes with different padding."""
    import onnxruntime as ort  # a dependency of kdcache: a broken install must fail here, not skip
    model = create_student(TINY, width=8).eval()
    path = tmp_path / "student.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 60, 76),), str(path), dynamo=False, input_names=["image"],
                      output_names=["depth"], dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 60, 76), (2, 3, 64, 96), (1, 3, 33, 35)]:
        x = torch.rand(*shape)
        (out,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), model(x), rtol=1e-4, atol=1e-5)


def test_cli_lists_every_preset(run_cli):
    code, out, err = run_cli("students", "--resolution", "64x80")
    assert code == 0, err
    assert "GMACs @64x80" in out
    for name in list_students():
        assert name in out


def test_cli_free_combination_and_errors(run_cli):
    code, out, _ = run_cli("students", "--student", "resnet18+nnconv5")
    assert code == 0 and "resnet18+nnconv5" in out and "GMACs @240x320" in out
    params = student_complexity("resnet18+nnconv5")["params"] / 1e6
    assert f"{params:.2f}" in out
    for args, message in [(("--resolution", "big"), "bad --resolution"), (("-s", "nope"), "unknown student"),
                          (("--resolution", "0x10"), "bad --resolution '0x10': both sides must be positive")]:
        code, _, err = run_cli("students", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_init_depth_bias_is_exact():
    from kdcache.students.model import inverse_softplus

    for value in (1e-3, 0.5, 2.5, 30.0):
        assert math.log1p(math.exp(inverse_softplus(value))) == pytest.approx(value, rel=1e-9)


def test_fold_normalisation_is_exact_away_from_padded_borders():
    from kdcache.students.encoders import fold_normalisation

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        reference = conv((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
        fold_normalisation(conv, mean, std)
        folded = conv(x)
    torch.testing.assert_close(folded[..., 1:, 1:], reference[..., 1:, 1:], rtol=1e-5, atol=1e-5)


def test_fold_norm_students_skip_the_input_normalisation(tmp_path):
    folded = create_student("mobilenetv3_small_100+minidpt", fold_norm=True, width=16).eval()
    assert folded.encoder.fold_norm and folded.encoder.body.conv_stem.bias is not None
    with torch.no_grad():
        assert folded(torch.rand(1, 3, 64, 80)).shape == (1, 1, 64, 80)


def test_a_folded_student_predicts_what_the_unfolded_one_does(tmp_path):
    """Same seed, same weights but for the folded first conv: the depth agrees except near the image border,
    where the folded conv zero-pads raw pixels instead of normalised ones (fold_normalisation's docstring)."""
    torch.manual_seed(0)
    plain = create_student("mobilenetv3_small_100+minidpt", width=16).eval()
    torch.manual_seed(0)
    folded = create_student("mobilenetv3_small_100+minidpt", width=16, fold_norm=True).eval()
    for model in (plain, folded):  # a wide head, so that the depth shows what the encoder computes
        torch.nn.init.normal_(model.head.weight, std=0.5, generator=torch.Generator().manual_seed(1))
    x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = plain(x), folded(x)
    relative = (got - expected).abs() / expected
    assert relative.median() < 1e-3 and relative[..., 32:-32, 32:-32].max() < 1e-3  # measured: 7e-5, 2e-4
    # Saved and loaded, a folded student is not folded a second time.
    from kdcache.students import load_student, save_student

    loaded, _ = load_student(save_student(folded, tmp_path / "folded", {}))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), got)


def test_realtime_aliases_are_measured_presets():
    from kdcache.students import STUDENTS, resolve_spec

    aliases = [n for n in list_students() if STUDENTS.info(n).get("alias_of")]
    assert sorted(aliases) == ["realtime-120", "realtime-30", "realtime-60"]
    for alias in aliases:
        info = STUDENTS.info(alias)
        assert resolve_spec(alias) == resolve_spec(info["alias_of"])
        assert "FPS quiet" in info["description"] and "at scale full" in info["description"]  # speed, accuracy's scale

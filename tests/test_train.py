"""`kdcache train` end to end on a tiny cache: every mode, multi-variant == separate, resume, refusals, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from helpers.offline_hub import save_timm_weights
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.errors import KdcacheError
from kdcache.store.layout import group_name
from kdcache.students import load_student
from kdcache.train import MODES, TrainConfig, train
from kdcache.train.checkpointing import read_state

SOURCES = {"labeled": "synth-train", "aux": "synth-aux", "aux-far": "synth-aux-far"}
MIX = {"labeled": 0.5, "aux": 0.25, "aux-far": 0.25}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    return build_cache(root / "tiny.zarr", {"synth-train": 24, "synth-aux": 16, "synth-aux-far": 16, "synth-test": 8})


@pytest.fixture(scope="module")
def gt_only_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-none")
    return build_cache(root / "none.zarr", {"synth-train": 16, "synth-test": 8}, teacher=False)


def run_config(cache, out, variants, **extra):
    raw = {"cache": cache, "out": str(out), "sources": dict(SOURCES), "mix": dict(MIX), "batch_size": 4,
           "steps": 4, "workers": 0, "log_every": 2, "variant": variants, **extra}
    return TrainConfig.from_dict(raw)


def weights(run_dir, which="last"):
    return load_file(str(run_dir / "checkpoints" / which / "model.safetensors"))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_trains_and_writes_a_run_dir(cache, tmp_path, mode):
    config = run_config(cache, tmp_path / mode, [{"mode": mode, **TINY_STUDENT}], val="synth-test")
    [result] = train(config)
    run = tmp_path / mode
    for name in ("config.json", "metrics.jsonl", "curves.png", "checkpoints/last/model.safetensors",
                 "checkpoints/last/student.json", "checkpoints/best/model.safetensors"):
        assert (run / name).is_file(), name
    expected_space = "disparity" if mode == "kd-aux-only" else "depth"  # the tiny teacher is relative
    model, meta = load_student(run)  # what evaluate / export / a ckpt: teacher will load
    assert result.output_space == meta["output_space"] == expected_space
    assert meta["variant"] == result.name and model(torch.rand(1, 3, 32, 48)).shape == (1, 1, 32, 48)
    assert result.steps == 4 and result.best_val_abs_rel is not None and result.best_val_abs_rel > 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train_records] == [2, 4]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in train_records)
    assert any(r["kind"] == "val" for r in records)


@pytest.mark.parametrize("mode", [{"mode": "gt-only"}, {}], ids=["gt-only", "default-losses"])
def test_gt_only_on_a_none_teacher_cache(gt_only_cache, tmp_path, mode):
    config = TrainConfig.from_dict({"cache": gt_only_cache, "out": str(tmp_path / "run"),
                               "sources": {"labeled": "synth-train"},
                               "batch_size": 4, "steps": 2, "workers": 0, "variant": [{**mode, **TINY_STUDENT}]})
    [result] = train(config)
    assert result.output_space == "depth" and (tmp_path / "run/checkpoints/last/trainer.json").is_file()
    assert json.loads((tmp_path / "run/config.json").read_text())["variant"]["loss"] == {"silog": 1.0}


def test_distillation_on_a_none_teacher_cache_is_refused(gt_only_cache, tmp_path):
    config = TrainConfig.from_dict({"cache": gt_only_cache, "out": str(tmp_path / "run"),
                               "sources": {"labeled": "synth-train"},
                               "batch_size": 4, "steps": 2, "variant": [{"mode": "kd-labeled", **TINY_STUDENT}]})
    with pytest.raises(KdcacheError, match="no teacher"):
        train(config)


VARIANTS = [
    {"name": "gt", "mode": "gt-only", "seed": 1, **TINY_STUDENT},
    {"name": "kd-far", "sources": ["labeled", "aux-far"], "loss": {"silog": 1, "kd": 1, "feature": 0.5},
     "seed": 2, "ema": 0.9, **TINY_STUDENT},
    {"name": "aux", "mode": "kd-aux-only", "sources": ["aux"], "seed": 3, **TINY_STUDENT},
]


def test_variants_in_one_pass_equal_separate_runs(cache, tmp_path):
    train(run_config(cache, tmp_path / "together", VARIANTS))
    for variant in VARIANTS:
        train(run_config(cache, tmp_path / variant["name"], [variant]))
        assert_same_weights(weights(tmp_path / "together" / variant["name"]), weights(tmp_path / variant["name"]))


def test_channels_last_changes_the_layout_not_the_maths(cache, tmp_path):
    variant = [{"name": "s", "mode": "kd-labeled-aux", **TINY_STUDENT}]
    train(run_config(cache, tmp_path / "nhwc", variant))
    train(run_config(cache, tmp_path / "nchw", variant, channels_last=False))
    # Not the weights: parameters whose gradient is 0 up to rounding (a BN bias before another BN) get +-lr
    # from AdamW's first steps either way. What the trained students predict is the same.
    image = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    (nhwc, _), (nchw, _) = load_student(tmp_path / "nhwc"), load_student(tmp_path / "nchw")
    with torch.no_grad():
        assert torch.allclose(nhwc.eval()(image), nchw.eval()(image), rtol=1e-3, atol=1e-5)


def test_resume_after_a_kill_is_bitwise_equal(cache, tmp_path, monkeypatch):
    from kdcache.train import variant as variant_module

    options = {"steps": 6, "checkpoint_every": 3, "workers": 2}
    variants = VARIANTS[1:2]
    train(run_config(cache, tmp_path / "straight", variants, **options))

    real_step, calls = variant_module.VariantTrainer.train_step, {"n": 0}

    def killed_after_four(self, batch):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt  # a kill between checkpoints: steps 4.. must be redone
        return real_step(self, batch)

    monkeypatch.setattr(variant_module.VariantTrainer, "train_step", killed_after_four)
    with pytest.raises(KeyboardInterrupt):
        train(run_config(cache, tmp_path / "killed", variants, **options))
    monkeypatch.setattr(variant_module.VariantTrainer, "train_step", real_step)
    with pytest.raises(KdcacheError, match="--resume"):
        train(run_config(cache, tmp_path / "killed", variants, **options))
    train(run_config(cache, tmp_path / "killed", variants, resume=True, **options))
    assert_same_weights(weights(tmp_path / "straight"), weights(tmp_path / "killed"))
    straight = read_state(tmp_path / "straight/checkpoints/last")
    resumed = read_state(tmp_path / "killed/checkpoints/last")
    for key, value in straight["variant"]["core"].items():
        assert torch.equal(value, resumed["variant"]["core"][key]), key
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed/metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))


@pytest.mark.parametrize("change, message", [
    ({"resolution": (64, 96)}, "resolution is 32x48"),
    ({"sources": {"labeled": "nyu-train"}, "mix": None}, "split 'nyu-train' is missing"),
    ({"val": "synth-val"}, "split 'synth-val' is missing"),
    ({"feature_layers": ["backbone.9"], "variant": [{"loss": {"silog": 1, "feature": 1}, **TINY_STUDENT}]},
     "feature layers"),
])
def test_a_cache_made_for_something_else_is_refused(cache, tmp_path, change, message):
    raw = {"cache": cache, "out": str(tmp_path / "run"), "sources": dict(SOURCES), "mix": dict(MIX), "batch_size": 4,
           "steps": 2, "variant": [{"mode": "kd-labeled-aux", **TINY_STUDENT}], **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(KdcacheError, match=message) as err:
        train(TrainConfig.from_dict(raw))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_trains_several_students(cache, tmp_path, run_cli):
    args = ("train", "--student", TINY_STUDENT["student"], "--student", TINY_STUDENT["student"], "--cache", cache,
            "--labeled", "synth-train", "--aux", "synth-aux", "--aux-ratio", "0.5", "--mode", "kd-labeled-aux",
            "--val", "synth-test", "--out", tmp_path / "cli", "--steps", "2", "--batch-size", "4", "--workers", "0",
            "--no-pretrained")
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "best val AbsRel" in out and out.count("test_efficientnet+nnconv5") >= 2
    assert (tmp_path / "cli" / "test_efficientnet+nnconv5-kd-labeled-aux-2" / "checkpoints/best").is_dir()
    code, out, err = run_cli(*args)  # the same call again must not overwrite the finished run
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1


def test_cli_user_errors_exit_2(cache, tmp_path, run_cli):
    code, _, err = run_cli("train", "--student", "mobilevit", "--cache", cache, "--out", tmp_path / "x")
    assert code == 2 and "--labeled" in err
    code, _, err = run_cli("train", "--student", "mobilevit", "--cache", cache, "--labeled", "synth-train",
                           "--mode", "kd-aux-only", "--out", tmp_path / "x")
    assert code == 2 and "--aux" in err


def test_bf16_autocast_and_ema_on_cpu(cache, tmp_path):
    variant = {"mode": "kd-labeled-aux", "ema": 0.99, **TINY_STUDENT}
    [result] = train(run_config(cache, tmp_path / "bf16", [variant], amp="bf16", steps=2, val="synth-test"))
    assert result.final_loss is not None and result.best_val_abs_rel is not None
    state = read_state(tmp_path / "bf16/checkpoints/last")
    raw = {k[len("student."):]: v for k, v in state["variant"]["core"].items() if k.startswith("student.")}
    saved = weights(tmp_path / "bf16")  # the checkpoint holds the EMA weights, the trainer state the raw ones
    assert any(not torch.equal(saved[k], raw[k]) for k in saved if saved[k].is_floating_point())


def test_bf16_losses_match_fp32_on_the_same_first_batch(cache, tmp_path):
    """Step 1 sees the same initial weights and batch under both precisions, so each loss term may move only by
    bf16's rounding of the student's activations (8 mantissa bits: ~0.4 % per value; measured: 0.14 % for the KD
    term), where a term computed in bf16 end to end, or on the wrong rows, moves by far more (a bf16 head: 37 %)."""
    first = {}
    for amp in ("off", "bf16"):
        variant = {"mode": "kd-labeled-aux", **TINY_STUDENT}
        train(run_config(cache, tmp_path / amp, [variant], amp=amp, steps=1, log_every=1))
        records = [json.loads(line) for line in (tmp_path / amp / "metrics.jsonl").read_text().splitlines()]
        first[amp] = next(r for r in records if r["kind"] == "train" and r["step"] == 1)
    terms = [k for k in first["off"] if k == "loss" or k.startswith("loss/")]
    assert len(terms) >= 3  # the total, the GT term and the KD term
    for term in terms:
        assert first["bf16"][term] == pytest.approx(first["off"][term], rel=2e-2), term


def pretrained_args(cache, out):
    """A `kdcache train` that leaves the pretrained default alone."""
    return ("train", "--student", TINY_STUDENT["student"], "--cache", cache, "--labeled", "synth-train", "--mode",
            "gt-only", "--val", "synth-test", "--out", out, "--steps", "1", "--batch-size", "2", "--workers", "0")


def test_cli_starts_from_the_cached_imagenet_weights_by_default_and_records_it(cache, tmp_path, run_cli, monkeypatch):
    import huggingface_hub

    _, weights_file = save_timm_weights(tmp_path / "hf", "test_efficientnet")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    code, _, err = run_cli(*pretrained_args(cache, tmp_path / "pre"))
    assert code == 0, err
    record = {"init": "imagenet", "source": "timm/test_efficientnet.r160_in1k", "file": str(weights_file)}
    config = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert config["variants"][0]["pretrained"] is True and config["encoder_weights"] == record
    _, meta = load_student(tmp_path / "pre")
    assert meta["encoder_weights"] == record
    code, out, err = run_cli("eval", "--model", tmp_path / "pre", "--split", "synth-test[:2]", "--no-efficiency",
                             "--split-option", "size=32x48")
    assert code == 0, err
    assert "Init" in out and "imagenet" in out


def test_cli_no_pretrained_records_a_start_from_scratch(cache, tmp_path, run_cli):
    code, _, err = run_cli(*pretrained_args(cache, tmp_path / "scratch"), "--no-pretrained")
    assert code == 0, err
    assert json.loads((tmp_path / "scratch" / "config.json").read_text())["encoder_weights"] == {"init": "scratch"}
    assert load_student(tmp_path / "scratch")[1]["encoder_weights"] == {"init": "scratch"}


def test_cli_without_the_imagenet_weights_refuses_before_touching_the_run(cache, tmp_path, run_cli):
    """Offline (conftest) with nothing cached: one line naming the opt-out, and an --overwrite keeps the old run."""
    code, _, err = run_cli(*pretrained_args(cache, tmp_path / "old"), "--no-pretrained")
    assert code == 0, err
    before = weights(tmp_path / "old")
    code, _, err = run_cli(*pretrained_args(cache, tmp_path / "old"), "--overwrite")
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    assert "--no-pretrained" in err and "HF_HUB_OFFLINE" in err
    assert_same_weights(weights(tmp_path / "old"), before)
    code, _, err = run_cli(*pretrained_args(cache, tmp_path / "new"))
    assert code == 2 and not (tmp_path / "new").exists()


def test_cli_print_config_opens_nothing_and_reads_back_equal(tmp_path, run_cli):
    """--print-config resolves without the cache (it need not exist); its TOML given as --config is the same run."""
    import tomllib

    from kdcache.train import TrainConfig

    args = ("train", "--cache", tmp_path / "no-such.zarr", "--out", tmp_path / "run", "--labeled", "synth-train",
            "--aux", "far=synth-aux-far", "-s", "a", "-s", "b", "--mode", "kd-labeled", "--lr", "2e-3",
            "--resolution", "32x48", "--feature-layer", "x.1", "--no-augment", "--seed", "3")
    code, out, err = run_cli(*args, "--print-config")
    assert code == 0, err
    config = TrainConfig.from_dict(tomllib.loads(out))
    assert [v.lr for v in config.variants] == [2e-3, 2e-3] and config.resolution == (32, 48)
    assert config.seed == 3 and not config.augment.enabled and config.feature_layers == ["x.1"]
    assert not (tmp_path / "run").exists() and not (tmp_path / "no-such.zarr").exists()
    (tmp_path / "printed.toml").write_text(out)
    code, again, err = run_cli("train", "--config", tmp_path / "printed.toml", "--print-config")
    assert code == 0 and again == out, err
    assert TrainConfig.from_toml(tmp_path / "printed.toml") == config


def test_lr_has_one_default_whichever_way_it_is_set(tmp_path):
    """Top level, [[variant]], the VariantConfig default: one lr, one dataclass default."""
    import dataclasses

    from kdcache.train import TrainConfig, VariantConfig

    base = {"cache": "c", "out": "o", "sources": {"labeled": "a"}}
    default = next(f.default for f in dataclasses.fields(VariantConfig) if f.name == "lr")
    assert TrainConfig.from_dict({**base, "student": "x"}).variants[0].lr == default
    config = TrainConfig.from_dict({**base, "lr": 5, "variant": [{"student": "x"}, {"student": "y", "lr": 0.1}]})
    assert [v.lr for v in config.variants] == [5.0, 0.1] and isinstance(config.variants[0].lr, float)


def test_finished_variants_are_reused_only_when_nothing_that_shapes_them_changed(cache, tmp_path, monkeypatch):
    from dataclasses import replace

    from kdcache.train.reuse import FINISHED, PARTIAL, UNTRAINED, only, variant_status

    two, added = VARIANTS[:2], {"name": "added", "mode": "kd-labeled", **TINY_STUDENT}
    out = tmp_path / "run"
    train(run_config(cache, out, two, steps=6, checkpoint_every=3))
    grown = run_config(cache, out, [*two, added], steps=6, checkpoint_every=3)
    assert variant_status(grown) == {two[0]["name"]: FINISHED, two[1]["name"]: FINISHED, "added": UNTRAINED}
    # Where, how fast and how verbosely are not what is learned; the learning rate and the step count are.
    assert set(variant_status(replace(grown, workers=2, log_every=1)).values()) == {FINISHED, UNTRAINED}
    assert variant_status(run_config(cache, out, two, steps=6, warmup=0.5)) == {v["name"]: UNTRAINED for v in two}
    assert variant_status(run_config(cache, out, two, steps=9)) == {v["name"]: UNTRAINED for v in two}

    # Training just the added variant puts it where the grown config keeps it, and leaves the others alone.
    before = weights(out / two[0]["name"])
    train(only(grown, ["added"]))
    assert (out / "added" / "checkpoints" / "last").is_dir() and not (out / "checkpoints").exists()
    assert set(variant_status(grown).values()) == {FINISHED}
    assert_same_weights(before, weights(out / two[0]["name"]))

    # A run killed part-way is partial: the demo resumes it.
    from kdcache.train import variant as variant_module

    killed_config = run_config(cache, tmp_path / "killed", two, steps=6, checkpoint_every=3)
    real_step, calls = variant_module.VariantTrainer.train_step, {"n": 0}

    def killed_after_three_steps(self, batch):
        calls["n"] += 1
        if calls["n"] > 3 * len(two):
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(variant_module.VariantTrainer, "train_step", killed_after_three_steps)
    with pytest.raises(KeyboardInterrupt):
        train(killed_config)
    assert variant_status(killed_config) == {v["name"]: PARTIAL for v in two}

    # A split added to the cache since (its root rewritten) changes nothing the runs read: they stay finished.
    # A cache rebuilt since (the groups of the splits they read written after they finished) means other
    # targets: train again.
    later = (out / "added" / "checkpoints" / "last" / "trainer.json").stat().st_mtime + 10
    root, split = Path(cache) / "zarr.json", Path(cache) / group_name(SOURCES["labeled"]) / "zarr.json"
    created = {path: path.stat() for path in (root, split)}
    try:
        os.utime(root, (later, later))
        assert set(variant_status(grown).values()) == {FINISHED}
        os.utime(split, (later, later))
        assert set(variant_status(grown).values()) == {UNTRAINED}
    finally:  # the cache is the module's
        for path, stat in created.items():
            os.utime(path, (stat.st_atime, stat.st_mtime))

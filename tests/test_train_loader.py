"""The cache loader and augmentation: resumable order, worker independence, consistent spatial transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.train_support import TINY_STUDENT, build_cache

from kdcache.errors import KdcacheError
from kdcache.train import TrainConfig
from kdcache.train.augment import augment_batch, sample_params
from kdcache.train.cache_plan import inspect_cache, loader_plan
from kdcache.train.train_config import AugmentConfig, source_counts
from kdcache.train.loader import make_loader
from kdcache.train.validate import batch_abs_rel

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader")
    url = build_cache(root / "c.zarr", {"synth-train": 24, "synth-aux": 16}, shard_size=4)
    config = TrainConfig.from_dict({
        "cache": url, "out": str(root / "run"), "sources": {"labeled": "synth-train", "aux": "synth-aux"},
        "batch_size": 4, "variant": [{"mode": "kd-labeled-aux", "loss": {"silog": 1, "kd": 1, "feature": 1},
                                      **TINY_STUDENT}],
    })
    return config, inspect_cache(config)


def batches(config, info, start, stop, workers, lanes=2, rank=0, world_size=1):
    plan = loader_plan(config, info, rank, world_size, lanes)
    return {step: batch for step, batch in make_loader(plan, start, stop, workers, False)}


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_worker_processes_and_in_process_loading_give_the_same_batches(setup):
    config, info = setup
    in_process, workers = batches(config, info, 0, 6, workers=0), batches(config, info, 0, 6, workers=2)
    assert sorted(in_process) == sorted(workers) == list(range(6))
    for step in in_process:
        assert_batches_equal(in_process[step], workers[step])


def test_starting_mid_run_replays_the_same_batches(setup):
    config, info = setup
    full = batches(config, info, 0, 14, workers=0)  # 14 steps: past one labeled epoch (12 steps)
    resumed = batches(config, info, 5, 14, workers=0)
    for step, batch in resumed.items():
        assert_batches_equal(batch, full[step])
    assert not torch.equal(full[0]["image"], full[1]["image"])


def test_ranks_read_different_samples(setup):
    config, info = setup
    rank0 = batches(config, info, 0, 3, workers=0, lanes=1, world_size=2)
    rank1 = batches(config, info, 0, 3, workers=0, lanes=1, rank=1, world_size=2)
    assert all(not torch.equal(rank0[s]["image"], rank1[s]["image"]) for s in rank0)


def test_batch_layout_and_masks(setup):
    config, info = setup
    batch = batches(config, info, 0, 1, workers=0)[0]
    counts = source_counts(config)
    assert batch["source"].tolist() == [0] * counts["labeled"] + [1] * counts["aux"]
    assert batch["has_gt"].tolist() == [True] * counts["labeled"] + [False] * counts["aux"]
    assert batch["teacher_ok"].all() and batch["features/neck.0"].shape == (4, 6, 4, 6)
    assert not batch["valid"][counts["labeled"]:].any()


def ramp_batch(n=4, height=32, width=48):
    """Fields whose content is a linear ramp, so bilinear resampling is exact and fields can be compared."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    ramp = (xs / width + 2 * ys / height)[None, None].repeat(n, 1, 1, 1)
    return {
        "image": ramp.repeat(1, 3, 1, 1) / 3, "teacher": ramp.clone(), "gt": 1 + ramp.clone(),
        "valid": torch.ones(n, 1, height, width, dtype=torch.bool),
        "features/x": F.avg_pool2d(ramp, 8).repeat(1, 2, 1, 1),
    }


def test_crops_and_flips_move_every_field_together():
    cfg = AugmentConfig(scale=(0.5, 0.9), flip=True, jitter=0.0)
    params = sample_params(np.random.default_rng(0), 4, cfg)
    assert params["flip"].any() and (params["scale"] < 1).all()
    batch = ramp_batch()
    metric = {"gt": torch.tensor([True, True, False, False]), "teacher": torch.zeros(4, dtype=torch.bool)}
    out = augment_batch({k: v.clone() for k, v in batch.items()}, params, metric)
    # The image and the teacher map stay the same picture; features stay its 8x8 block average.
    torch.testing.assert_close(out["image"][:, :1] * 3, out["teacher"], atol=1e-5, rtol=0)
    # (Interior cells are exact; a coarse grid can only clamp, not extrapolate, in its outer half cell.)
    pooled, features = F.avg_pool2d(out["teacher"], 8), out["features/x"][:, :1]
    torch.testing.assert_close(pooled[..., 1:-1, 1:-1], features[..., 1:-1, 1:-1], atol=1e-4, rtol=0)
    torch.testing.assert_close(pooled, features, atol=0.1, rtol=0)
    # Metric GT is divided by the zoom (times the crop side), disparity GT is not rescaled.
    scale = torch.tensor(params["scale"], dtype=torch.float32)
    ratio = (out["gt"].flatten(1).mean(1) / (1 + out["teacher"].flatten(1).mean(1)))
    torch.testing.assert_close(ratio[:2], scale[:2], atol=0.02, rtol=0)
    torch.testing.assert_close(ratio[2:], torch.ones(2), atol=0.02, rtol=0)
    assert out["valid"].dtype == torch.bool and out["valid"].all()


def test_a_pure_flip_mirrors_exactly_and_jitter_touches_the_image_only():
    cfg = AugmentConfig(scale=(1.0, 1.0), flip=True, jitter=0.3)
    params = sample_params(np.random.default_rng(3), 4, cfg)
    params["flip"][:] = True
    batch = ramp_batch()
    out = augment_batch({k: v.clone() for k, v in batch.items()}, params, {})
    for key in ("teacher", "gt", "features/x"):
        torch.testing.assert_close(out[key], batch[key].flip(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(out["image"], batch["image"].flip(-1), atol=1e-3)
    again = sample_params(np.random.default_rng(3), 4, cfg)
    assert all(np.array_equal(again[k], sample_params(np.random.default_rng(3), 4, cfg)[k]) for k in again)


def test_validation_metric_aligns_relative_predictions_only():
    gt = torch.rand(2, 1, 8, 8) * 4 + 1
    valid = torch.ones_like(gt, dtype=torch.bool)
    assert max(batch_abs_rel(gt, gt, valid, "depth")) < 1e-9
    affine = 1.0 / (3.0 / gt + 0.2)  # disparity up to scale and shift
    assert max(batch_abs_rel(affine, gt, valid, "disparity")) < 1e-6
    assert min(batch_abs_rel(affine, gt, valid, "depth")) > 0.1


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("train-*.toml")), ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    config = TrainConfig.from_toml(path)
    assert sum(source_counts(config).values()) == config.batch_size and config.variants


@pytest.mark.parametrize("batch_size, mix, expected", [
    (24, {"labeled": 0.3333, "aux": 0.33335, "aux-far": 0.33335}, {"labeled": 8, "aux": 8, "aux-far": 8}),
    (16, {"labeled": 0.5, "aux": 0.25, "aux-far": 0.25}, {"labeled": 8, "aux": 4, "aux-far": 4}),
    (10, {"labeled": 0.7, "aux": 0.3}, {"labeled": 7, "aux": 3}),
    (5, {"labeled": 0.5, "aux": 0.5}, {"labeled": 3, "aux": 2}),
])
def test_batch_counts_follow_the_mix_by_largest_remainder(batch_size, mix, expected):
    sources = {name: f"synth-train[:{i + 1}]" for i, name in enumerate(mix)}
    config = TrainConfig.from_dict({"cache": "c", "out": "o", "sources": sources, "student": "x", "mix": mix,
                                     "batch_size": batch_size})
    assert source_counts(config) == expected


@pytest.mark.parametrize("raw, message", [
    ({"variant": [{"student": "x", "sources": ["nope"]}]}, "unknown source"),
    ({"aux_ratio": 1.5, "sources": {"labeled": "a", "aux": "b"}}, "aux-ratio"),
    ({"batch_size": 2, "mix": {"labeled": 0.9, "aux": 0.1}, "sources": {"labeled": "a", "aux": "b"},
      "variant": [{"student": "x", "sources": ["aux"]}]}, "no such samples"),
    ({"variant": [{"student": "x", "lr_typo": 1}]}, "unknown variant key"),
])
def test_bad_configs_are_refused_in_one_line(raw, message):
    base = {"cache": "c", "out": "o", "sources": {"labeled": "a"}, "student": "x"}
    with pytest.raises(KdcacheError, match=message) as err:
        TrainConfig.from_dict({**base, **raw})
    assert "\n" not in str(err.value)

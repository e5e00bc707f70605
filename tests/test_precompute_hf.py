"""Precompute through the CLI with tiny random-weight HF teachers (the real loading code), plus
`kdcache cache info|verify` and the CLI's one-line user errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers.precompute_fakes  # noqa: F401  (registers the kdtest-* splits)
from helpers.tiny_models import make_tiny_depth_anything, make_tiny_dpt

from kdcache.precompute.features import pool_to_grid
from kdcache.store import open_store
from kdcache.teachers import create_teacher

BUILDERS = {"dpt": make_tiny_dpt, "depth-anything": make_tiny_depth_anything}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def tiny_teacher(request, tmp_path_factory):
    return "hf:" + str(BUILDERS[request.param](tmp_path_factory.mktemp(request.param)))


def test_cli_precompute_stores_what_the_hf_teacher_returns(tiny_teacher, tmp_path, run_cli):
    out = tmp_path / "c.zarr"
    workers = "2" if "depth-anything" in tiny_teacher else "0"  # one run through real DataLoader workers
    code, stdout, stderr = run_cli(
        "precompute", "--teacher", tiny_teacher, "--split", "kdtest-labeled", "--split", "kdtest-unlabeled",
        "--out", out, "--resolution", "32x48", "--batch-size", "4", "--shard-size", "4", "--workers", workers,
        "--features", "default",
    )
    assert code == 0, stderr
    assert "splits" in stdout and "complete" in stdout
    store = open_store(str(out))
    teacher = create_teacher(tiny_teacher)
    assert store.manifest["teacher"]["identity"] == teacher.identity
    assert store.feature_layers == teacher.default_feature_layers
    data = store.split("kdtest-labeled").read(0, 8)
    out_now = teacher.predict(torch.from_numpy(data["image"]).permute(0, 3, 1, 2).float() / 255,
                              layers=store.feature_layers)
    np.testing.assert_allclose(data["teacher"].astype(np.float32), out_now.depth.numpy(), rtol=2e-3, atol=2e-3)
    for layer in store.feature_layers:
        pooled = pool_to_grid(out_now.features[layer], (4, 6)).numpy()
        np.testing.assert_allclose(data[f"features/{layer}"].astype(np.float32), pooled, rtol=5e-3, atol=5e-3)

    code, stdout, _ = run_cli("cache", "info", out)
    assert code == 0 and "kdtest-unlabeled" in stdout and "bytes/sample" in stdout
    code, stdout, stderr = run_cli("cache", "verify", out, "--sample", "3")
    assert code == 0 and "OK" in stderr, stdout + stderr


def test_cli_verify_fails_on_a_tampered_cache(tiny_teacher, tmp_path, run_cli):
    import zarr

    out = tmp_path / "c.zarr"
    assert run_cli("precompute", "--teacher", tiny_teacher, "--split", "kdtest-labeled[:4]", "--out", out,
                   "--resolution", "32x48", "--shard-size", "4", "--workers", "0", "--features", "none")[0] == 0
    zarr.open_group(str(out), mode="r+")["kdtest-labeled_4/teacher"][:] = 123.0
    code, _, stderr = run_cli("cache", "verify", out, "--sample", "4")
    assert code == 1 and "FAIL" in stderr


@pytest.mark.parametrize("args,message", [
    (("cache", "info", "/nonexistent/c.zarr"), "no cache store"),
    (("precompute", "--teacher", "none", "--split", "kdtest-labeled", "--out", "x.zarr", "--resolution", "abc"),
     "bad --resolution"),
    (("precompute", "--teacher", "none", "--split", "kdtest-labeled", "--out", "x.zarr", "--shard", "2/2"),
     "bad --shard"),
    (("precompute", "--teacher", "no-such-teacher", "--split", "kdtest-labeled", "--out", "x.zarr"),
     "unknown teacher"),
    (("precompute", "--teacher", "none", "--split", "kdtest-labeled", "--out", "x.zarr", "--feature-grid", "0x0"),
     "bad --feature-grid '0x0': both sides must be positive"),
])
def test_cli_user_errors_are_one_line_with_exit_2(args, message, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(*args)
    assert code == 2 and message in stderr
    assert len(stderr.strip().splitlines()) <= 2  # one logical line (rich may soft-wrap at 80 columns)
    assert not (tmp_path / "x.zarr").exists()


def test_synthetic_world_split_precomputes_without_a_teacher(tmp_path):
    from kdcache.precompute import PrecomputeConfig, precompute

    url = precompute(PrecomputeConfig("none", ["synth-train[:4]"], str(tmp_path / "s.zarr"), resolution=(24, 32),
                                      shard_size=2))
    data = open_store(url).split("synth-train[:4]").read()
    assert data["image"].shape == (4, 24, 32, 3) and data["gt"].shape == (4, 24, 32)
    assert data["valid"].any() and (data["gt"][data["valid"]] > 0).all()

"""Precompute with a fake teacher: exact targets, invalid samples, PCA budget, flip-TTA, refusals, URLs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.precompute_fakes import RESOLUTION, FakeSplit, FakeTeacher

from kdcache.errors import KdcacheError
from kdcache.precompute import PrecomputeConfig, precompute, verify_store
from kdcache.precompute.features import pool_to_grid
from kdcache.precompute.resize import resize_image, resize_nearest
from kdcache.store import open_store

FP16_TOL = dict(rtol=2e-3, atol=2e-3)


def run(url, splits=("kdtest-labeled",), teacher=None, **options):
    options = dict(dict(resolution=RESOLUTION, batch_size=3, shard_size=4, feature_layers="default"), **options)
    return precompute(PrecomputeConfig(teacher or FakeTeacher(), list(splits), str(url), **options))


def teacher_on(images: np.ndarray, teacher=None, layers=("stem", "deep")):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (teacher or FakeTeacher()).predict(x, layers=layers)


def test_stored_targets_equal_the_teacher_on_the_stored_images(tmp_path):
    split = open_store(run(tmp_path / "c.zarr")).split("kdtest-labeled")
    data = split.read()
    source = FakeSplit("kdtest-labeled", 20, labeled=True)
    for i in (0, 7, 19):
        np.testing.assert_array_equal(data["image"][i], resize_image(source[i].image, RESOLUTION))
        np.testing.assert_array_equal(data["gt"][i], np.where(
            data["valid"][i], resize_nearest(source[i].depth, RESOLUTION), 0))
        np.testing.assert_array_equal(data["valid"][i], resize_nearest(source[i].valid, RESOLUTION))
    out = teacher_on(data["image"])
    ok = data["teacher_ok"]
    np.testing.assert_allclose(data["teacher"][ok].astype(np.float32), out.depth.numpy()[ok], **FP16_TOL)
    for layer in ("stem", "deep"):
        pooled = pool_to_grid(out.features[layer], (4, 6)).numpy()
        np.testing.assert_allclose(data[f"features/{layer}"][ok].astype(np.float32), pooled[ok], **FP16_TOL)
    entry = open_store(str(tmp_path / "c.zarr")).manifest
    assert entry["teacher"]["identity"] == {"source": "fake", "seed": 0}
    assert entry["features"]["per_layer"]["deep"] == dict(
        array="deep", source_channels=48, channels=48, pca=False, components=None, mean=None)


def test_non_finite_teacher_output_is_marked_and_zeroed(tmp_path):
    data = open_store(run(tmp_path / "c.zarr", teacher=FakeTeacher(nan_below=0.01))).split("kdtest-labeled").read()
    assert list(np.flatnonzero(~data["teacher_ok"])) == [5]  # the all-black sample
    assert not data["teacher"][5].any() and not data["features/deep"][5].any()
    assert np.isfinite(data["teacher"]).all()
    assert data["readable"].all()


def test_float16_overflow_is_marked_not_stored_as_inf(tmp_path):
    data = open_store(run(tmp_path / "c.zarr", teacher=FakeTeacher(scale=1e6))).split("kdtest-labeled").read()
    assert not data["teacher_ok"].any() and np.isfinite(data["teacher"]).all()


def test_unreadable_samples_are_skipped_on_unlabeled_splits_and_fatal_when_strict(tmp_path):
    data = open_store(run(tmp_path / "c.zarr", ["kdtest-unlabeled"])).split("kdtest-unlabeled").read()
    assert list(np.flatnonzero(~data["readable"])) == [3, 17]
    assert list(np.flatnonzero(~data["teacher_ok"])) == [3, 17]
    assert data["ids"][3] == "" and data["ids"][4] == "kdtest-unlabeled/0004"  # index-aligned, not compacted
    with pytest.raises(KdcacheError, match="unreadable sample .*0003.jpg.*--no-strict"):
        run(tmp_path / "strict.zarr", ["kdtest-unlabeled"], strict=True)


def test_rerun_of_a_complete_store_does_nothing_and_changed_options_are_refused(tmp_path):
    url = run(tmp_path / "c.zarr")
    again = FakeTeacher()
    run(url, teacher=again)
    assert again.calls == 0
    cases = [
        (dict(resolution=(16, 24)), "resolution"),
        (dict(teacher=FakeTeacher(seed=1)), "teacher identity"),
        (dict(flip_tta=True), "flip-TTA"),
        (dict(shard_size=8), "shard size"),
        (dict(feature_layers=["stem"]), "feature layers"),
    ]
    for options, label in cases:
        with pytest.raises(KdcacheError, match=f"made with {label} .*choose a new --out") as info:
            run(url, **options)
        assert "\n" not in str(info.value)


def test_a_split_added_to_a_store_runs_the_teacher_on_it_only_and_keeps_the_others(tmp_path):
    url = run(tmp_path / "c.zarr")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "c.zarr" / "kdtest-labeled").rglob("*") if p.is_file()}
    teacher = FakeTeacher()
    run(url, ["kdtest-unlabeled"], teacher=teacher)  # only the new split needs naming
    assert teacher.images == 24  # kdtest-unlabeled's 24 images, none of kdtest-labeled's 20
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "c.zarr" / "kdtest-labeled").rglob("*") if p.is_file()}
    assert after == before
    both = open_store(run(tmp_path / "both.zarr", ["kdtest-labeled", "kdtest-unlabeled"]))
    grown = open_store(url)
    assert grown.splits == both.splits and grown.completeness() == both.completeness()
    for name in both.splits:
        want, got = both.split(name).read(), grown.split(name).read()
        for field in want:
            np.testing.assert_array_equal(got[field], want[field], err_msg=f"{name}/{field}")
    again = FakeTeacher()
    run(url, ["kdtest-unlabeled", "kdtest-labeled"], teacher=again)  # any order, nothing left to do
    assert again.calls == 0
    with pytest.raises(KdcacheError, match="made with teacher identity .*choose a new --out"):
        run(url, ["kdtest-big"], teacher=FakeTeacher(seed=1))  # another teacher never adds to this store
    assert open_store(url).splits == both.splits
    held = [p for p in (tmp_path / ".c.zarr.locks").iterdir() if p.read_text()]
    assert held == []  # the refused run left no holder behind, so the next run takes over nothing


def test_a_split_added_to_a_store_with_pca_features_uses_the_stored_bases(tmp_path):
    options = dict(feature_budget=2 * 2 * (4 * 6 * 2) * 5, pca_fit_samples=8)  # as in the budget test below
    url = run(tmp_path / "c.zarr", **options)
    run(url, ["kdtest-unlabeled"], **options)
    both = run(tmp_path / "both.zarr", ["kdtest-labeled", "kdtest-unlabeled"], **options)
    assert open_store(url).manifest["features"] == open_store(both).manifest["features"]
    assert open_store(url).manifest["features"]["per_layer"]["deep"]["pca"]
    want, got = open_store(both).split("kdtest-unlabeled").read(), open_store(url).split("kdtest-unlabeled").read()
    for field in want:
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)


def test_out_that_is_not_a_cache_is_never_written(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(KdcacheError, match="not a kdcache store"):
        run(tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_file_url_store_equals_path_store(tmp_path):
    by_path = open_store(run(tmp_path / "p.zarr")).split("kdtest-labeled").read()
    url = f"file://{tmp_path}/u.zarr"
    by_url = open_store(run(url)).split("kdtest-labeled").read()
    assert (tmp_path / "u.zarr" / "zarr.json").exists()
    for name in by_path:
        np.testing.assert_array_equal(by_path[name], by_url[name], err_msg=name)


def test_feature_budget_reduces_channels_with_a_stored_pca_basis(tmp_path):
    budget = 2 * 2 * (4 * 6 * 2) * 5  # two layers x 5 channels at 4x6 float16
    store = open_store(run(tmp_path / "c.zarr", feature_budget=budget, pca_fit_samples=8))
    per_layer = store.manifest["features"]["per_layer"]
    assert {k: (v["channels"], v["pca"]) for k, v in per_layer.items()} == {"stem": (10, True), "deep": (10, True)}
    from kdcache.precompute.store_plan import feature_plan

    basis = feature_plan(store.url, store.manifest).bases["deep"]
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(10), atol=1e-5)
    data = store.split("kdtest-labeled").read(0, 8)
    pooled = pool_to_grid(teacher_on(data["image"]).features["deep"], (4, 6))
    np.testing.assert_allclose(data["features/deep"].astype(np.float32), basis.project(pooled).numpy(), **FP16_TOL)
    error = np.abs(basis.reconstruct(data["features/deep"]) - pooled.numpy()).mean()
    assert error < 0.5 * np.abs(pooled.numpy() - pooled.numpy().mean(axis=(0, 2, 3), keepdims=True)).mean()


def test_feature_budget_too_small_is_a_clear_error(tmp_path):
    with pytest.raises(KdcacheError, match="raise --feature-budget"):
        run(tmp_path / "c.zarr", feature_budget=10)


@pytest.mark.parametrize("grid", [(0, 0), (0, 4), (3, -1)])
def test_an_empty_feature_grid_is_a_clear_error(tmp_path, grid):
    with pytest.raises(KdcacheError, match="bad --feature-grid"):
        run(tmp_path / "c.zarr", feature_grid=grid)
    assert not (tmp_path / "c.zarr").exists()


def test_flip_tta_stores_the_mean_of_both_predictions(tmp_path):
    data = open_store(run(tmp_path / "c.zarr", flip_tta=True)).split("kdtest-labeled").read(0, 4)
    plain = teacher_on(data["image"]).depth
    flipped = teacher_on(data["image"][:, :, ::-1].copy()).depth.flip(-1)
    np.testing.assert_allclose(data["teacher"].astype(np.float32), ((plain + flipped) / 2).numpy(), **FP16_TOL)


def test_none_teacher_stores_images_and_ground_truth_only(tmp_path):
    split = open_store(run(tmp_path / "c.zarr", teacher="none")).split("kdtest-labeled")
    assert split.fields == ["image", "ids", "readable", "gt", "valid"]
    assert open_store(str(tmp_path / "c.zarr")).manifest["teacher"] is None


@pytest.mark.parametrize("name", ["dpt-large", "hf:{tmp}/no-such-model"])
def test_missing_teacher_weights_create_no_store(tmp_path, name):
    with pytest.raises(KdcacheError, match="no-such-model|not in the HF cache"):  # offline: conftest sets HF_HUB_OFFLINE
        run(tmp_path / "c.zarr", teacher=name.format(tmp=tmp_path))
    assert not (tmp_path / "c.zarr").exists()


def test_verify_passes_on_a_good_cache_and_catches_a_corrupted_sample(tmp_path):
    import zarr

    url = run(tmp_path / "c.zarr")
    report = verify_store(url, teacher=FakeTeacher(), samples=20)
    assert report.ok and report.splits[0].recomputed == 20
    assert report.splits[0].diffs["teacher"][1] < 1e-3
    zarr.open_group(url, mode="r+")["kdtest-labeled/teacher"][4] = 7.0
    report = verify_store(url, teacher=FakeTeacher(), samples=20)
    assert not report.ok and "'teacher' differs" in report.problems[0]


def test_the_pca_fit_pass_is_not_paid_twice(tmp_path):
    teacher = FakeTeacher()
    run(tmp_path / "c.zarr", teacher=teacher, feature_budget=2 * 2 * (4 * 6 * 2) * 5, pca_fit_samples=8)
    assert teacher.calls == 5 * 2  # 5 shards of 4 in batches of 3 and 1: every batch runs exactly once


def test_remote_style_fsspec_url_goes_through_fsspec(tmp_path):
    url = f"memory://kdcache-tests/{tmp_path.name}/c.zarr"  # FsspecStore path, as s3:// or gs:// would
    split = open_store(run(url)).split("kdtest-labeled")
    assert split.shards_done() == (5, 5)
    local = open_store(run(tmp_path / "c.zarr")).split("kdtest-labeled")
    for name, values in split.read(0, 8).items():
        np.testing.assert_array_equal(values, local.read(0, 8)[name], err_msg=name)
    again = FakeTeacher()
    run(url, teacher=again)
    assert again.calls == 0


def test_verify_and_info_report_an_incomplete_cache(tmp_path, run_cli):
    import zarr

    url = run(tmp_path / "c.zarr")
    zarr.open_group(url, mode="r+")["kdtest-labeled/shard_done"][1] = False
    report = verify_store(url, samples=0)
    assert not report.ok and "1 of 5 shards missing" in report.problems[0]
    code, stdout, _ = run_cli("cache", "info", url)
    assert code == 0 and "4/5 INCOMPLETE" in stdout
    code, stdout, _ = run_cli("cache", "info", url, "--json")
    assert code == 0 and '"shard_size": 4' in stdout
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(KdcacheError, match="existing file"):
        run(tmp_path / "file.zarr")

"""evaluate(EvalConfig): students and HF teachers side by side, protocol selection, efficiency, reports, `kdcache eval`."""

import json

import numpy as np
import pytest
import torch

from helpers.eval_fixtures import SPLIT, ArraySplit, save_tiny_student
from kdcache.errors import KdcacheError
from kdcache.evaluate import EvalConfig, Predictor, evaluate, to_markdown
from kdcache.metrics import METRIC_KEYS
from kdcache.students import load_student


class OraclePredictor(Predictor):
    """Knows ArraySplit's rule (d = 1 + 5 * red): a perfect metric-depth model."""

    def __init__(self, space="depth"):
        super().__init__(f"oracle-{space}", space, torch.device("cpu"), None)

    def forward(self, images):
        depth = 1.0 + 5.0 * images[:, 0]
        return depth if self.output_space == "depth" else 3.0 / depth + 0.1  # disparity up to scale and shift


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    from helpers.tiny_models import make_tiny_dpt

    return make_tiny_dpt(tmp_path_factory.mktemp("dpt") / "tiny-dpt")


def test_a_perfect_model_scores_perfectly_under_every_applicable_protocol():
    rows = evaluate(EvalConfig([OraclePredictor("depth"), OraclePredictor("disparity")], ArraySplit(),
                               ["metric", "aligned-disparity", "aligned-depth"], efficiency=False))
    got = {(r["name"], r["protocol"]): r for r in rows}
    # The disparity model is never scored with metric (nor aligned-depth): one aligned-disparity row.
    assert sorted(got) == [("oracle-depth", "aligned-depth"), ("oracle-depth", "aligned-disparity"),
                           ("oracle-depth", "metric"), ("oracle-disparity", "aligned-disparity")]
    for row in rows:
        assert row["metrics"]["abs_rel"] == pytest.approx(0.0, abs=1e-5) and row["metrics"]["d1"] == 1.0
        assert row["images"] == 3 and row["protocol_description"]
    assert "never with metric" in got[("oracle-disparity", "aligned-disparity")]["note"]


def test_flip_tta_averages_with_the_mirrored_prediction():
    class Ramp(Predictor):
        def forward(self, images):
            return 1.0 + torch.arange(images.shape[-1], dtype=torch.float32).expand(images.shape[0], *images.shape[-2:])

    ramp = Ramp("ramp", "depth", torch.device("cpu"), None)
    out = ramp.predict(np.zeros((2, 4, 3), np.uint8), flip_tta=True)
    assert np.allclose(out, 2.5)  # mean of 1..4 and its mirror


def test_student_and_hf_teacher_side_by_side_with_efficiency(tmp_path, tiny_dpt):
    run = save_tiny_student(tmp_path / "run")
    rows = evaluate(EvalConfig([str(run), f"hf:{tiny_dpt}"], ArraySplit(count=2), throughput_batch=2))
    student, teacher = rows
    assert (student["kind"], student["protocol"], student["note"]) == ("student", "metric", None)
    # A relative-depth teacher gets the aligned protocol automatically, and the row says so.
    assert teacher["kind"] == "teacher" and teacher["protocol"] == "aligned-disparity" and teacher["note"]
    for row in rows:
        assert set(row["metrics"]) == set(METRIC_KEYS) and all(np.isfinite(list(row["metrics"].values())))
        eff = row["efficiency"]
        assert eff["params"] > 0 and eff["gflops"] > 0 and eff["latency_ms"] > 0
        assert eff["throughput_ips"] > 0 and eff["throughput_batch"] == 2 and eff["peak_memory_mib"] >= 0
    assert student["efficiency"]["input_size"] == [48, 64]
    assert student["efficiency"]["params"] == sum(p.numel() for p in load_student(run)[0].parameters())
    markdown = to_markdown(rows)
    assert "| Model |" in markdown and "aligned-disparity:" in markdown and str(run) in markdown


def test_real_synth_split_gets_metric_with_its_own_cap(tmp_path):
    run = save_tiny_student(tmp_path / "run", resolution=(32, 40))
    row = evaluate(EvalConfig([str(run)], "synth-test[:2]", split_options={"size": (48, 64)}, efficiency=False))[0]
    assert (row["protocol"], row["images"], row["split"]) == ("metric", 2, "synth-test[:2]")
    assert 0 < row["metrics"]["abs_rel"] < 10 and row["eval_size"] == [48, 64]


def test_unlabeled_split_and_unknown_model_are_one_line_errors():
    unlabeled = ArraySplit()
    unlabeled.labeled = False
    with pytest.raises(KdcacheError, match="no ground truth"):
        evaluate(EvalConfig([OraclePredictor()], unlabeled))
    with pytest.raises(KdcacheError, match="neither an existing student run"):
        evaluate(EvalConfig(["no-such-model"], ArraySplit()))


def test_kdcache_eval_cli_writes_table_json_and_markdown(tmp_path, run_cli, tiny_dpt):
    run = save_tiny_student(tmp_path / "run")
    out, md = tmp_path / "res" / "eval.json", tmp_path / "eval.md"
    code, stdout, stderr = run_cli("eval", "--split", SPLIT, "--size", "48x64", "--model", run, "--model",
                                   f"hf:{tiny_dpt}", "--throughput-batch", "2", "--json", out, "--markdown", md,
                                   "--flip-tta")
    assert code == 0, stderr
    assert "aligned-disparity" in stdout and "metric" in stdout and "AbsRel" in stdout
    payload = json.loads(out.read_text())
    assert [r["protocol"] for r in payload["results"]] == ["metric", "aligned-disparity"]
    assert payload["results"][0]["flip_tta"] is True and payload["results"][0]["images"] == 2
    assert "| Model |" in md.read_text()


def test_kdcache_eval_cli_user_errors_exit_2(run_cli, tmp_path):
    code, _, stderr = run_cli("eval", "--split", SPLIT, "--model", "no-such-model", "--no-efficiency")
    assert code == 2 and "error:" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = run_cli("eval", "--split", SPLIT, "--model", "x", "--protocol", "zoe")
    assert code == 2 and "unknown protocol" in stderr
    code, _, stderr = run_cli("eval", "--split", "synth-test[:1]", "--size", "32by40", "--model", "x")
    assert code == 2 and "bad --size" in stderr
    code, stdout, _ = run_cli("eval", "--list-protocols")
    assert code == 0 and "aligned-depth" in stdout
    for missing in ("/nonexistent", str(tmp_path / "run"), "runs/absent", "model.onnx"):
        code, _, stderr = run_cli("eval", "--split", SPLIT, "--model", missing, "--no-efficiency")
        assert code == 2 and f"{missing}: no such file or directory" in stderr and "teacher '" not in stderr


def test_cpu_peak_memory_sees_torch_allocations_and_throughput_batch_shrinks(monkeypatch):
    import kdcache.evaluate.efficiency as efficiency

    class Allocates(Predictor):
        def forward(self, images):
            scratch = torch.ones(len(images), 4, 1024, 1024)  # 16 MiB per image, freed before returning
            return images[:, 0] + scratch.mean()

    model = Allocates("alloc", "depth", torch.device("cpu"), None)
    peak, method = efficiency.peak_memory(model, (8, 8))
    assert 16 <= peak < 20 and "profiler" in method
    # With ~100 MiB available, a batch of 32 x 16 MiB does not fit: halved until it does (<= 80 % of it).
    monkeypatch.setattr(efficiency, "_meminfo", lambda field: 100 * efficiency.MIB)
    _, batch = efficiency.throughput(model, (8, 8), 32, peak, repeats=1)
    assert batch == 4


class Constant(Predictor):
    def __init__(self, value=2.0, space="depth"):
        super().__init__(f"const-{space}", space, torch.device("cpu"), None)
        self.value = value

    def forward(self, images):
        return torch.full((len(images), *images.shape[-2:]), self.value)


def test_nyu_reader_gets_the_eigen_crop_and_raw_depth_range(data_root):
    from helpers.data_fixtures import write_nyu

    from kdcache.data import open_split
    from kdcache.evaluate.context import crop_mask
    from kdcache.metrics import depth_metrics, mean_metrics

    write_nyu(data_root, height=480, width=640)
    row = evaluate(EvalConfig([Constant(2.0)], "nyu-test", efficiency=False))[0]
    expected = []
    for sample in open_split("nyu-test"):
        mask = sample.valid & (sample.depth > 1e-3) & (sample.depth < 10) & crop_mask("eigen", (480, 640))
        if mask.any():  # the fixture's far frames have nothing under 10 m inside the crop: not scored
            expected.append(depth_metrics(np.full((480, 640), 2.0), sample.depth, mask))
    assert 0 < len(expected) < 3 and row["unscored"] == 3 - len(expected) and row["images"] == len(expected)
    assert row["metrics"] == pytest.approx(mean_metrics(expected))
    assert evaluate(EvalConfig([Constant(2.0)], "nyu-test", ["hu"], efficiency=False))[0]["eval_size"] == [228, 304]


def test_hrwsi_disparity_ground_truth_gets_aligned_disparity(data_root):
    from helpers.data_fixtures import write_hrwsi

    write_hrwsi(data_root)
    row = evaluate(EvalConfig([Constant(2.0)], "hrwsi-val", ["metric"], efficiency=False))[0]
    assert row["protocol"] == "aligned-disparity" and "relative disparity" in row["note"]


class KittiFrames:
    """Two in-memory KITTI-sized frames with sparse GT: the geometry of kitti-eigen-test without 652 files."""

    labeled, name, space = True, "kitti-eigen-test", "depth"

    def __len__(self):
        return 2

    def __getitem__(self, index):
        from kdcache.data.sample import Sample

        rng = np.random.default_rng(index)
        rows = np.arange(375, dtype=np.float32)[:, None].repeat(1242, axis=1)
        depth = np.where(rng.random((375, 1242)) < 0.1, 80.0 - 0.2 * rows, 0.0).astype(np.float32)
        image = np.zeros((375, 1242, 3), np.uint8)
        return Sample(f"{index}", image, depth, depth > 0, "depth", {"dataset": "kitti"})


def test_metric_and_metric_zoedepth_share_one_forward_pass_and_differ_on_kitti(capsys):
    class Counting(Predictor):
        def __init__(self):
            super().__init__("counting", "depth", torch.device("cpu"), None)
            self.shapes = []

        def forward(self, images):
            self.shapes.append(tuple(images.shape[-2:]))
            return torch.full((len(images), *images.shape[-2:]), 40.0)

    model = Counting()
    rows = evaluate(EvalConfig([model], KittiFrames(), ["metric", "metric-zoedepth"], efficiency=False))
    assert model.shapes == [(352, 1216)] * 2  # the KB crop, once per image for both protocols
    bts, zoe = rows
    assert (bts["protocol"], zoe["protocol"]) == ("metric", "metric-zoedepth")
    assert bts["metrics"]["rmse"] != pytest.approx(zoe["metrics"]["rmse"], abs=1e-3)  # different Garg windows
    assert "--flip-tta" in capsys.readouterr().err  # ZoeDepth's numbers are flip-averaged: the run says so
    evaluate(EvalConfig([model], KittiFrames(), ["metric-zoedepth"], flip_tta=True, efficiency=False))
    assert "--flip-tta" not in capsys.readouterr().err

"""bench/pareto.py's report logic on made-up figures: the budget picks, the docs table, the plot."""

import importlib.util
from pathlib import Path


def _bench(name: str):
    """A bench script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pareto = _bench("pareto")


def _results():
    def entry(abs_rel, fps):
        return {"eval": {"abs_rel": abs_rel, "d1": 0.5}, "speed": {"fps": fps, "latency_ms": 1e3 / fps,
                                                                  "peak_memory_mib": 50.0},
                "complexity": {"params_m": 1.0, "gflops": 0.5}}

    return {"teacher": entry(0.20, 10), "slow-good": entry(0.21, 35), "mid": entry(0.22, 70),
            "fast": entry(0.25, 130), "faster-worse": entry(0.30, 200), "untimed": {"eval": {"abs_rel": 0.1}}}


def test_each_budget_gets_the_most_accurate_preset_that_meets_it(tmp_path):
    results = _results()
    names = ["slow-good", "mid", "fast", "faster-worse", "untimed"]
    picks = pareto.budget_picks(results, names, [30, 60, 120, 500])
    assert picks == {30: "slow-good", 60: "mid", 120: "fast", 500: None}
    table = pareto.markdown_table(results, names, picks)
    assert table.index("faster-worse") < table.index("| mid") < table.index("teacher")  # fastest first
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}
    assert rows["mid"].endswith("| 60 FPS |") and rows["fast"].endswith("| 120 FPS |")
    assert rows["slow-good"].endswith("| 30 FPS |") and rows["faster-worse"].endswith("|  |")
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"before\n{pareto.MARKERS[0]}\nold\n{pareto.MARKERS[1]}\nafter\n")
    assert pareto.write_docs_table(table, docs)
    text = docs.read_text()
    assert "old" not in text and table in text and text.startswith("before") and text.endswith("after\n")
    pareto.plot(results, names, [30, 60, 120], tmp_path / "pareto.png", "test")
    assert (tmp_path / "pareto.png").stat().st_size > 10_000


def test_run_names_carry_the_seed_and_the_length_lever():
    for preset, seed, length in [("mobilevit", 0, 1.0), ("mobilevit", 2, 1.0), ("realtime-60", 1, 2.0)]:
        assert pareto.parse_run_name(pareto.run_name(preset, seed, length)) == (preset, seed, length)
    assert pareto.run_name("a", 1, 2) == "a@x2@seed1" and pareto.run_name("a") == "a"


def test_a_scale_takes_its_overrides_from_the_config_and_nothing_else():
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / "configs" / "pareto.toml").read_text())
    full = pareto.scaled_config(dict(config), "full")
    assert full["demo_scale"] == "full" and full["epochs"] == config["scales"]["full"]["epochs"] != config["epochs"]
    assert full["recipe"] == config["recipe"] and "scales" not in full
    assert pareto.scaled_config(dict(config), None)["epochs"] == config["epochs"]


def test_the_teacher_phase_runs_the_demo_steps_as_run_steps_takes_them(tmp_path, monkeypatch):
    import inspect

    import kdcache.demo.steps as steps

    called = []
    signature = inspect.signature(steps.run_steps)
    monkeypatch.setattr(steps, "run_steps", lambda *a, **k: called.append(signature.bind(*a, **k)))
    pareto.phase_teacher({"demo_scale": "tiny"}, tmp_path, [], {})
    keys = [step.key for step in called[0].arguments["steps"]]
    assert keys == ["gt-store", "teacher", "teacher-cache"]


def test_the_seed_table_gives_mean_and_spread_and_judges_the_moonshot_on_the_mean():
    import statistics

    realtime = _bench("realtime_seeds")

    def run(abs_rel, fps=None):
        return {"eval": {"abs_rel": abs_rel, "d1": 0.8}, **({"speed": {"fps": fps}} if fps else {})}

    results = {"teacher": run(0.100, 50), "mobilenetv4-nnconv5": run(0.101, 96),
               "mobilenetv4-nnconv5@seed1": run(0.103), "mobilenetv4-nnconv5@seed2": run(0.102),
               "mobilenetv3-small-lite": run(0.108, 151), "mobilenetv3-small-lite@seed1": run(0.116)}
    table = realtime.rows(results, ["mobilenetv4-nnconv5", "mobilenetv3-small-lite"])
    rows = {r["preset"]: r for r in table}
    mean, sd = rows["mobilenetv4-nnconv5"]["abs_rel"]
    assert (mean, sd) == (statistics.fmean([0.101, 0.103, 0.102]), statistics.stdev([0.101, 0.103, 0.102]))
    text = realtime.markdown(results, table, 3, "abc1234", "2")
    lines = text.splitlines()
    assert lines[0].startswith("Reproduces: commit abc1234, 2 torch thread")
    sixty, one_twenty = [line for line in lines if line.startswith("- >=")]
    assert "**met** by mobilenetv4-nnconv5" in sixty  # 0.1020 <= 1.05 x 0.100
    assert "**not met** by mobilenetv3-small-lite" in one_twenty  # 0.112 > 1.10 x 0.100
    assert "only 2 of 3 seeds" in one_twenty and "inside the seed sd" in one_twenty  # 0.002 < sd 0.0057
    assert "inside the seed sd" not in sixty  # 0.003 below the bar, sd 0.001

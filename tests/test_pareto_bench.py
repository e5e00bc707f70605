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


def test_a_lever_is_adopted_only_when_its_validation_gain_beats_both_sds_with_every_seed_in():
    realtime = _bench("realtime_seeds")

    def run(val, abs_rel=None):
        return {"train": {"best_val_abs_rel": val}, **({"eval": {"abs_rel": abs_rel, "d1": 0.8}} if abs_rel else {})}

    results = {"teacher": {"eval": {"abs_rel": 0.100, "d1": 0.8}, "speed": {"fps": 20}},
               "fast": run(0.110, 0.111), "fast@seed1": run(0.112, 0.113), "fast@seed2": run(0.114, 0.112),
               "fast@x2": run(0.100, 0.101), "fast@x2@seed1": run(0.101, 0.102),  # 2 of 3 seeds: no decision yet
               "slow": run(0.120, 0.12), "slow@seed1": run(0.122, 0.12), "slow@seed2": run(0.124, 0.12),
               "slow@x2": run(0.119), "slow@x2@seed1": run(0.121), "slow@x2@seed2": run(0.123)}  # gain 0.001 < 0.004
    rows = {row["lever"]: row for row in realtime.levers(results, ["fast", "slow"], 3)}
    assert set(rows) == {"fast@x2", "slow@x2"} and not any(row["adopted"] for row in rows.values())
    assert abs(rows["slow@x2"]["gain"] - 0.001) < 1e-9 and abs(rows["slow@x2"]["bar"] - 0.004) < 1e-9
    results["fast@x2@seed2"] = run(0.102, 0.100)
    adopted = realtime.levers(results, ["fast", "slow"], 3)
    assert [row["lever"] for row in adopted if row["adopted"]] == ["fast@x2"]  # gain 0.011 > 0.002 + 0.001
    text = realtime.markdown(results, realtime.rows(results, ["fast", "fast@x2"]), 3, "abc1234", "2", adopted)
    assert "| fast@x2 | 0.1120 ± 0.0020 | 0.1010 ± 0.0010 (3) | +0.0110 | 0.0030 | **adopted**" in text
    assert "| slow@x2 |" in text and "| not adopted |" in text
    assert "| fast@x2 | not timed |" in text  # a lever's row: scored on the test rooms once adopted


def test_the_readme_budget_table_gives_each_alias_and_the_default_from_the_same_rows(tmp_path):
    from kdcache.students import STUDENTS

    realtime = _bench("realtime_seeds")
    aliases = {n: STUDENTS.info(n)["alias_of"] for n in STUDENTS.names() if n.startswith("realtime-")}
    default = realtime.default_student()

    def run(abs_rel, rounds_ms=None):
        speed = {"speed": {"fps": 1e3 / sorted(rounds_ms)[1], "rounds": rounds_ms}} if rounds_ms else {}
        return {"eval": {"abs_rel": abs_rel, "d1": 0.8}, **speed}

    results = {"teacher": run(0.100), default: run(0.104, [30.0, 25.0, 40.0])}
    for preset in set(aliases.values()):
        results[preset], results[f"{preset}@seed1"] = run(0.110, [5.0, 4.0, 8.0]), run(0.112)
    text = realtime.budget_table(results, realtime.rows(results, [*set(aliases.values()), default]), "full", 2)
    lines = text.splitlines()
    assert "AbsRel at `full`, 2 seeds (teacher 0.1000)" in lines[0] and len(lines) == 2 + len(aliases) + 1
    for alias, preset in aliases.items():
        assert f"| `{alias}` | `{preset}` | 0.1110 ± 0.0014 (+11.0 %) | 200 (125-250) |" in text
    assert lines[-1] == f"| no budget | `{default}` (the default) |  | 0.1040 ± 0.0000 (+4.0 %, 1 of 2 seeds) | 33 (25-40) |"
    fast = next(iter(aliases.values()))
    for seed, (val, abs_rel) in enumerate([(0.090, 0.101), (0.091, 0.103)]):  # an adopted lever that validates better
        results[pareto.run_name(fast, seed, 2)] = {"train": {"best_val_abs_rel": val}, "eval": {"abs_rel": abs_rel,
                                                                                                "d1": 0.8}}
    rows = realtime.rows(results, [*set(aliases.values()), default, pareto.run_name(fast, 0, 2)])
    assert f"| `{fast}` | 0.1020 ± 0.0014 (+2.0 %, 2x the epochs) | 200 (125-250) |" in realtime.budget_table(
        results, rows, "full", 2)
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{realtime.README_MARKERS[0]}\nold\n{realtime.README_MARKERS[1]}\nb\n")
    assert realtime.write_docs_table(text, readme, realtime.README_MARKERS) and "old" not in readme.read_text()


def test_phases_in_two_processes_keep_each_others_figures(tmp_path):
    pareto.save_results(tmp_path, {"fast": {"train": {"val": 0.2}, "speed": {"fps": 90.0}}})
    training, timing = pareto.load_results(tmp_path), pareto.load_results(tmp_path)  # two processes' copies
    timing["fast"]["speed"] = {"fps": 150.0}
    pareto.save_results(tmp_path, timing)  # the speed phase finishes first
    training["slow"] = {"train": {"val": 0.1}}
    pareto.save_results(tmp_path, training)  # the training pass saves later, its stale speed in memory
    training["slower"] = {"train": {"val": 0.3}}
    pareto.save_results(tmp_path, training)  # and saves again
    assert pareto.load_results(tmp_path) == {"fast": {"train": {"val": 0.2}, "speed": {"fps": 150.0}},
                                             "slow": {"train": {"val": 0.1}}, "slower": {"train": {"val": 0.3}}}

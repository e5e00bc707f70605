"""bench/pareto.py's report logic on made-up figures: the budget picks, the docs table, the plot."""

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location("pareto", Path(__file__).resolve().parents[1] / "bench" / "pareto.py")
pareto = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(pareto)


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

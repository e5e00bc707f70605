"""bench/check_results.py's comparison of a demo's results.json with docs/results.md's table (no demo is run)."""

import importlib.util
import json
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("check_results", _ROOT / "bench" / "check_results.py")
check = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check)

DOC = """# Demo results

## Scale `tiny`

| model | AbsRel | RMSE (m) | δ1 | params | CPU latency (loaded machine) |
| --- | ---: | ---: | ---: | ---: | ---: |
| teacher | 0.2064 | 0.910 | 0.567 | 11.45 M | 20.5 ms |
| gt-only | 0.2483 | 1.036 | 0.521 | 1.03 M | 16.4 ms |

## Scale `small`

| model | AbsRel (mean ± sd, 2 seeds) | RMSE (m) | δ1 | params | GFLOPs | CPU latency (ms) | FPS |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| teacher | 0.1533 | 0.667 | 0.752 | 11.45 M | 0.52 | 24.2 | 41 |
| kd-labeled-aux-far (3-4x) | **0.1845 ± 0.0031** | 0.809 | 0.666 | 1.03 M | 0.12 | 11.7 | 86 |
"""


def _row(name, abs_rel, rmse, d1, params, **extra):
    return {"name": name, "abs_rel": abs_rel, "rmse": rmse, "d1": d1, "params": params, "latency_ms": 99.0, **extra}


def _tiny_results():
    return {"scale": "tiny", "rows": [_row("teacher", 0.20641, 0.9104, 0.5671, 11_450_000),
                     _row("gt-only", 0.24834, 1.0361, 0.5209, 1_030_000)]}


def test_a_run_that_rounds_to_every_documented_figure_has_no_drift():
    documented = check.doc_table(DOC, "tiny")
    assert documented == {"teacher": {"abs_rel": "0.2064", "rmse": "0.910", "d1": "0.567", "params": "11.45 M"},
                          "gt-only": {"abs_rel": "0.2483", "rmse": "1.036", "d1": "0.521", "params": "1.03 M"}}
    assert check.drift(documented, check.run_figures(_tiny_results())) == []  # latency is not compared


def test_each_figure_that_moves_in_its_last_printed_digit_is_one_drift_line():
    results = _tiny_results()
    results["rows"][1]["abs_rel"] = 0.24846  # prints 0.2485
    results["rows"][0]["params"] = 11_460_000
    lines = check.drift(check.doc_table(DOC, "tiny"), check.run_figures(results))
    assert lines == ["gt-only abs_rel: docs 0.2483, run 0.2485", "teacher params: docs 11.45, run 11.46"]


def test_missing_and_extra_rows_are_drift():
    results = _tiny_results()
    results["rows"][1]["name"] = "kd-labeled"
    lines = check.drift(check.doc_table(DOC, "tiny"), check.run_figures(results))
    assert lines == ["gt-only: in the docs, not in the run", "kd-labeled: in the run, not in the docs"]


def test_a_seeded_row_compares_mean_and_spread_and_reads_its_name_before_the_note():
    documented = check.doc_table(DOC, "small")
    assert documented["kd-labeled-aux-far"]["abs_rel"] == "0.1845 ± 0.0031"
    results = {"rows": [_row("teacher", 0.1533, 0.667, 0.752, 11_450_000),
                        _row("kd-labeled-aux-far", 0.1845, 0.809, 0.666, 1_030_000, seeds=2, abs_rel_std=0.0041)]}
    assert check.drift(documented, check.run_figures(results)) == [
        "kd-labeled-aux-far abs_rel_std: docs 0.0031, run 0.0041"]


def test_the_real_tiny_table_is_read_whole():
    documented = check.doc_table((_ROOT / "docs" / "results.md").read_text(), "tiny")
    assert set(documented) == {"teacher", "gt-only", "kd-labeled", "kd-labeled-aux", "kd-aux-only",
                               "kd-labeled-aux-far"}
    assert all(set(cells) == {"abs_rel", "rmse", "d1", "params"} for cells in documented.values())


def _finished_demo(tmp_path, results, threads=2):
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "report.md").write_text(f"Machine: x86_64 Linux, CPU, {threads} threads, torch 2.x.\n")
    doc = tmp_path / "results.md"
    doc.write_text(DOC)
    return ["--scale", "tiny", "--out", str(tmp_path), "--doc", str(doc)]


def test_the_command_exits_0_on_a_match_and_1_with_a_diff_on_drift(tmp_path, capsys):
    assert check.main(_finished_demo(tmp_path, _tiny_results())) == 0
    assert "all match" in capsys.readouterr().out
    results = _tiny_results()
    results["rows"][0]["d1"] = 0.570
    assert check.main(_finished_demo(tmp_path, results)) == 1
    out = capsys.readouterr().out
    assert "drift: teacher d1: docs 0.567, run 0.570" in out and "1 drifted" in out


def test_a_run_made_with_another_thread_count_is_refused_not_compared(tmp_path, capsys):
    assert check.main(_finished_demo(tmp_path, _tiny_results(), threads=1)) == 2
    assert "made with 1 threads, not 2: pass --threads 1" in capsys.readouterr().err


def test_only_the_first_table_of_a_section_is_its_table():
    text = DOC.replace("## Scale `small`", "Below, a lever table.\n\n| lever | AbsRel |\n| --- | ---: |\n"
                                            "| ema | 0.1811 |\n\n## Scale `small`")
    assert set(check.doc_table(text, "tiny")) == {"teacher", "gt-only"}


def test_a_demo_of_another_scale_is_refused_not_compared(tmp_path, capsys):
    results = _tiny_results() | {"scale": "small"}
    assert check.main(_finished_demo(tmp_path, results)) == 2
    assert "holds a `small` demo, not `tiny`" in capsys.readouterr().err

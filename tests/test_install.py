"""Every install path works: the wheel holds everything the demo needs, run from anywhere.

The wheel is built offline from a copy of the source tree with the environment's own setuptools (the `dev` extra
pins one that builds wheels by itself), installed with `pip --target` (dependencies reused from this environment),
and its `kdcache` script runs the whole micro demo from an unrelated directory, then reuses every finished step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdcache.demo.report import ROW_ORDER

ROOT = Path(__file__).resolve().parents[1]
# Top-level folders that are not part of the source (outputs, environments, datasets).
NOT_SOURCE = {".git", ".venv", "venv", "build", "dist", ".pytest_cache", "cache", "runs", "data", "kdcache-demo",
              "demo-out", "docs"}


def _not_source(directory: str, names: list[str]) -> list[str]:
    top = Path(directory) == ROOT
    return [n for n in names if n == "__pycache__" or (top and (n in NOT_SOURCE or n.endswith(".egg-info")))]


def _run(argv: list, **options) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=900, **options)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A `pip install --target` of the wheel built from this checkout; returns the target folder."""
    import setuptools

    major, minor = (int(v) for v in setuptools.__version__.split(".")[:2])
    assert (major, minor) >= (70, 1), "setuptools >= 70.1 builds the wheel offline: pip install -e '.[dev]'"
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_not_source)  # never write build/ into the checkout itself
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
          work / "dist", source])
    [wheel] = (work / "dist").glob("kdcache-*.whl")
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", work / "site", wheel])
    return work / "site"


@pytest.mark.slow
def test_the_installed_wheel_runs_the_micro_demo_from_another_directory(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed), "OMP_NUM_THREADS": "1"}
    where = _run([sys.executable, "-c", "import kdcache.demo.plan as p; print(p.__file__); print(p.configs_dir())"],
                 env=env, cwd=tmp_path).stdout.split()
    assert all(Path(p).is_relative_to(installed) for p in where), where  # the wheel's copy, not this checkout
    assert (Path(where[1]) / "demo-micro.toml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    demo = [installed / "bin" / "kdcache", "demo", "--scale", "micro", "--out", "demo", "--workers", "0"]
    stdout = _run(demo, env=env, cwd=elsewhere).stdout
    out = elsewhere / "demo"
    results = json.loads((out / "results.json").read_text())
    assert [row["name"] for row in results["rows"]] == ROW_ORDER
    for row in results["rows"]:
        for key in ("abs_rel", "rmse", "d1", "params", "latency_ms"):
            assert math.isfinite(row[key]), (row["name"], key)
    assert len(results["findings"]) == 5 and len(results["targets"]) == 4 and len(results["feature_checks"]) == 2
    assert Path(results["config"]).is_relative_to(installed)
    report = (out / "report.md").read_text()
    assert "## Targets of this scale" in report and "target: KD + aux AbsRel" in stdout
    assert "kdcache precompute --teacher none" in report and "kdcache train --config" in report
    assert (out / "gallery.png").stat().st_size > 1000 and (out / "curves.png").stat().st_size > 1000
    assert "report:" in stdout

    again = subprocess.run([str(a) for a in demo], capture_output=True, text=True, env=env, cwd=elsewhere,
                           timeout=600)
    assert again.returncode == 0 and " ".join(again.stderr.split()).count("complete, reused") == 6, again.stderr[-2000:]

    # A second seed: only its student pass, the evaluation and the report are new.
    seeds = subprocess.run([str(a) for a in demo + ["--seeds", "2"]], capture_output=True, text=True, env=env,
                           cwd=elsewhere, timeout=600)
    assert seeds.returncode == 0, seeds.stderr[-2000:]
    log = " ".join(seeds.stderr.split())  # rich wraps long step titles at the terminal width
    assert log.count("complete, reused") == 4 and log.count("changed since it ran: redone") == 2
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == 2 and all(row["seeds"] == 2 for row in results["rows"] if row["name"] != "teacher")
    assert all(math.isfinite(row["abs_rel_std"]) for row in results["rows"])
    assert (out / "runs" / "students-seed1" / "kd-labeled-aux+feat" / "checkpoints" / "best").is_dir()
    assert "AbsRel of each seed" in (out / "report.md").read_text() and "spread" in seeds.stdout

    # An edited experiment (a row dropped) redoes its student passes, but every row left was trained exactly so:
    # none retrains, only the evaluation and the report are new.
    kept = [row for row in results["rows"] if row["name"] not in ("teacher", "kd-labeled")]
    fewer = elsewhere / "fewer.toml"
    fewer.write_text(f"rows = {json.dumps([row['name'] for row in kept])}\n" + Path(results["config"]).read_text())
    trained = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("students*/*/checkpoints/last/trainer.json")}
    edited = subprocess.run([str(a) for a in demo + ["--seeds", "2", "--config", fewer]], capture_output=True,
                            text=True, env=env, cwd=elsewhere, timeout=600)
    assert edited.returncode == 0, edited.stderr[-2000:]
    assert "training" not in edited.stderr and {p: p.stat().st_mtime_ns for p in trained} == trained
    assert [row["name"] for row in json.loads((out / "results.json").read_text())["rows"]][1:] == [
        row["name"] for row in kept]

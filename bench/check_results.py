"""Does a demo still give docs/results.md's table? Every number of a scale's table, compared with a demo run.

    nice -n 10 python bench/check_results.py --scale tiny [--out runs/check-tiny] [--threads 2]
    python bench/check_results.py --scale tiny --out <a finished demo folder>   # only reads its results.json

Runs `kdcache demo --scale S --out OUT` with `--threads` torch threads (the demo reuses the finished steps of an
earlier run in OUT, so a finished folder is only read), then compares every accuracy figure and parameter count of
the docs' table for that scale with the run's `results.json`, each rounded as the docs print it. Latency, GFLOPs
and FPS are measurements of the machine, not of the code, and are left out. Prints one line per drifted figure and
exits 1 on any drift (0 when every figure matches), so a code change that moves the `tiny` table is caught.

The thread count is part of the result: oneDNN splits a convolution's sums across threads, so 1 and 2 threads
round differently and the difference grows over a training run (docs/results.md, scale `small`). A `report.md`
made with another count than `--threads` is refused rather than compared.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "results.md"
# The docs' column headers (their start) -> the results.json field each shows and how to read a doc cell.
COLUMNS = {"AbsRel": "abs_rel", "RMSE": "rmse", "δ1": "d1", "params": "params"}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def doc_table(text: str, scale: str) -> dict[str, dict[str, str]]:
    """The first table under `## Scale `<scale>``: model -> {results.json field: the cell as printed}."""
    section = re.search(rf"^## Scale `{re.escape(scale)}`\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if section is None:
        raise SystemExit(f"error: {DOC.name} has no '## Scale `{scale}`' section: check --scale")
    lines = _first_table(section.group(1).splitlines())
    if len(lines) < 3:
        raise SystemExit(f"error: the `{scale}` section of {DOC.name} has no table")
    header = _cells(lines[0])
    fields = {i: field for i, name in enumerate(header) for start, field in COLUMNS.items() if name.startswith(start)}
    # "kd-labeled-aux-far (3-4x)": the row's name is the results.json name before any note in brackets
    return {_cells(line)[0].split(" (")[0]: {fields[i]: cell for i, cell in enumerate(_cells(line)) if i in fields}
            for line in lines[2:]}


def _first_table(lines: list[str]) -> list[str]:
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("*").strip() for cell in line.strip().strip("|").split("|")]


def run_figures(results: dict) -> dict[str, dict[str, float]]:
    """results.json's rows: model -> {field: value}, `abs_rel_std` too for a row of several seeds."""
    figures = {}
    for row in results["rows"]:
        values = {field: row.get(field) for field in COLUMNS.values()}
        if row.get("seeds", 1) > 1:
            values["abs_rel_std"] = row.get("abs_rel_std")
        figures[row["name"]] = values
    return figures


def as_printed(value: float | None, cell: str, field: str) -> str:
    """`value` written with the decimals of the doc's `cell` (params in millions, as the docs print them)."""
    if value is None:
        return "n/a"
    shown = _NUMBER.search(cell)
    decimals = len(shown.group(0).partition(".")[2]) if shown else 4
    return f"{value / 1e6 if field == 'params' else value:.{decimals}f}"


def drift(documented: dict[str, dict[str, str]], figures: dict[str, dict[str, float]]) -> list[str]:
    """One line per figure of the docs' table that the run does not give, rounded as the docs print it."""
    lines = []
    for model in sorted(set(documented) | set(figures)):
        if model not in figures:
            lines.append(f"{model}: in the docs, not in the run")
            continue
        if model not in documented:
            lines.append(f"{model}: in the run, not in the docs")
            continue
        for field, cell in documented[model].items():
            numbers = _NUMBER.findall(cell)
            if not numbers:
                lines.append(f"{model} {field}: docs show {cell!r}, no number")
                continue
            wanted = [(field, numbers[0])]
            if "±" in cell:  # mean ± spread over seeds: both must match
                wanted.append(("abs_rel_std", numbers[1]))
            for name, shown in wanted:
                got = as_printed(figures[model].get(name), shown, name)
                if got != shown:
                    lines.append(f"{model} {name}: docs {shown}, run {got}")
    return lines


def report_threads(out: Path) -> int | None:
    """The torch thread count the run's report.md states (`CPU, N threads`), if any."""
    path = out / "report.md"
    found = re.search(r"CPU, (\d+) threads", path.read_text()) if path.exists() else None
    return int(found.group(1)) if found else None


def run_demo(scale: str, out: Path, threads: int) -> float:
    """The demo at `scale` into `out` with `threads` torch threads; its wall time in seconds."""
    import torch

    from kdcache.demo import run_demo as demo

    torch.set_num_threads(threads)
    started = time.perf_counter()
    demo(scale, out)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="tiny", help="the docs' section to check (default: tiny)")
    parser.add_argument("--out", type=Path, help="demo folder (default: runs/check-<scale>); a finished one is read")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the run (the docs state theirs)")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    out = args.out or ROOT / "runs" / f"check-{args.scale}"
    documented = doc_table(args.doc.read_text(), args.scale)
    if not (out / "results.json").exists():
        from kdcache.timing import machine_load

        seconds = run_demo(args.scale, out, args.threads)
        print(f"demo --scale {args.scale}: {seconds / 60:.1f} min, {args.threads} threads, {machine_load().describe()}")
    threads = report_threads(out)
    if threads is not None and threads != args.threads:
        print(f"error: {out} was made with {threads} threads, not {args.threads}: pass --threads {threads} "
              "or another --out", file=sys.stderr)
        return 2
    results = json.loads((out / "results.json").read_text())
    if results.get("scale") != args.scale:
        print(f"error: {out} holds a `{results.get('scale')}` demo, not `{args.scale}`: pass its --scale or another "
              "--out", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    lines = drift(documented, run_figures(results))
    checked = sum(len(cells) for cells in documented.values())
    for line in lines:
        print(f"drift: {line}")
    verdict = f"{len(lines)} drifted" if lines else "all match"
    print(f"{args.doc.name} `{args.scale}`: {checked} figures of {len(documented)} rows checked against {out} "
          f"({threads or args.threads} threads; this checkout: {commit}): {verdict}")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluation results for people (rich table, markdown) and machines (JSON), from `evaluate`'s rows."""

from __future__ import annotations

import json
import platform

from rich.console import Console
from rich.table import Table
from rich.text import Text

import kdcache
from kdcache.console import stdout_console
from kdcache.metrics import HIGHER_IS_BETTER, METRIC_KEYS
from kdcache.timing import MachineLoad, busiest, warn_if_busy

_LABELS = {"abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSElog", "log10": "log10",
           "silog": "SILog", "d1": "δ1", "d2": "δ2", "d3": "δ3"}
_EFFICIENCY = (("params_m", "Params (M)", "{:.2f}"), ("gflops", "GFLOPs", "{:.2f}"),
               ("latency_ms", "Latency (ms)", "{:.1f}"), ("throughput_ips", "Img/s", "{:.1f}"),
               ("peak_memory_mib", "Peak (MiB)", "{:.1f}"))


_MODEL_HEADERS = ["Model", "Init", "Protocol", "N"]  # Init: the student encoder's start (imagenet | scratch)


def _metric_cell(key: str, value: float) -> str:
    return f"{value:.2f}" if key == "silog" else f"{value:.3f}"


def _efficiency_cells(row: dict) -> list[str]:
    eff = row.get("efficiency") or {}
    return [fmt.format(eff[key]) if eff.get(key) is not None else "–" for key, _, fmt in _EFFICIENCY]


def _metric_headers() -> list[str]:
    return [f"{_LABELS[k]} {'↑' if k in HIGHER_IS_BETTER else '↓'}" for k in METRIC_KEYS]


def _efficiency_headers() -> list[str]:
    return ["Input"] + [label for _, label, _ in _EFFICIENCY]


def _model_cells(row: dict) -> list[str]:
    protocol = row["protocol"] + (" +flip" if row.get("flip_tta") else "") + (" *" if row.get("note") else "")
    # A student's encoder started from ImageNet weights or from scratch: two different experiments.
    init = (row.get("identity") or {}).get("encoder_init", "–")
    return [row["name"], init, protocol, str(row["images"])]


def _metric_cells(row: dict) -> list[str]:
    return [_metric_cell(k, row["metrics"][k]) for k in METRIC_KEYS]


def _efficiency_row(row: dict) -> list[str]:
    size = (row.get("efficiency") or {}).get("input_size")
    return ["x".join(map(str, size)) if size else "–", *_efficiency_cells(row)]


def _footnotes(rows: list[dict]) -> list[str]:
    lines, seen = [], set()
    for row in rows:
        if row["protocol"] not in seen:
            seen.add(row["protocol"])
            lines.append(f"{row['protocol']}: {row['protocol_description']}")
    for row in rows:
        if row.get("note"):
            lines.append(f"* {row['name']}: {row['note']}")
    return lines


def _efficiency_footnote(rows: list[dict]) -> list[str]:
    lines = []
    eff = next((r["efficiency"] for r in rows if r.get("efficiency")), None)
    if eff:
        lines.append(f"efficiency on {eff['device']}: latency at batch 1, throughput at batch "
                     f"{eff.get('throughput_batch', '–')}, peak memory = {eff['memory_method']}, "
                     f"GFLOPs by torch FlopCounterMode (1 MAC = 2 FLOPs)")
        load = _timed_at(rows)
        if load is not None:
            lines.append(f"timed at {load.describe()}")
    return lines


def _timed_at(rows: list[dict]) -> MachineLoad | None:
    """The busiest machine load the models' efficiency was timed at (None if none was timed)."""
    return busiest((r.get("efficiency") or {}).get("machine") for r in _measured_once(rows))


def _measured_once(rows: list[dict]) -> list[dict]:
    """One row per model for the efficiency table (a model scored under two protocols is one model)."""
    seen, out = set(), []
    for row in rows:
        if row.get("efficiency") and row["name"] not in seen:
            seen.add(row["name"])
            out.append(row)
    return out


def results_tables(rows: list[dict]) -> list[Table]:
    """Rich tables: accuracy (one line per model and protocol, recipes in the caption), then efficiency."""
    split = rows[0]["split"] if rows else ""
    # Text, not markup: recipes contain brackets such as "[min, max]".
    accuracy = Table(title=f"kdcache eval — {split}", caption=Text("\n".join(_footnotes(rows))),
                     caption_justify="left")
    for header in _MODEL_HEADERS + _metric_headers():
        accuracy.add_column(header, justify="left" if header in _MODEL_HEADERS[:3] else "right")
    for row in rows:
        accuracy.add_row(*_model_cells(row), *_metric_cells(row))
    tables = [accuracy]
    measured = _measured_once(rows)
    if measured:
        efficiency = Table(title=f"efficiency — {measured[0]['efficiency']['device']}",
                           caption=Text("\n".join(_efficiency_footnote(rows))), caption_justify="left")
        for header in ["Model", *_efficiency_headers()]:
            efficiency.add_column(header, justify="left" if header == "Model" else "right")
        for row in measured:
            efficiency.add_row(row["name"], *_efficiency_row(row))
        tables.append(efficiency)
    return tables


def print_results(rows: list[dict], console: Console | None = None) -> None:
    """The tables on stdout (logs and progress bars stay on stderr)."""
    console = console or stdout_console()
    for table in results_tables(rows):
        console.print(table)
    load = _timed_at(rows)
    if load is not None:
        warn_if_busy(load)


def to_markdown(rows: list[dict]) -> str:
    """GitHub markdown: one table with accuracy and efficiency, protocol recipes and notes listed below it."""
    with_eff = any(r.get("efficiency") for r in rows)
    headers = [*_MODEL_HEADERS, *_metric_headers(), *(_efficiency_headers() if with_eff else [])]
    lines = [f"Split: `{rows[0]['split']}`" if rows else "", "",
             "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(headers))) + "|"]
    for row in rows:
        cells = _model_cells(row) + _metric_cells(row) + (_efficiency_row(row) if with_eff else [])
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {line}" for line in _footnotes(rows) + _efficiency_footnote(rows)]
    return "\n".join(lines) + "\n"


def to_json(rows: list[dict]) -> str:
    import torch

    payload = {"kdcache_version": kdcache.__version__, "torch": torch.__version__, "python": platform.python_version(),
               "results": rows}
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str)

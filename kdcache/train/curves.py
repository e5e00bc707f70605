"""metrics.jsonl (one JSON object per log/validation event) and the curves.png drawn from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdcache.atomic import replacing, write_text


class MetricsLog:
    """Append-only JSON lines; on resume the lines past the checkpoint's step are dropped (atomically)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = Path(path)
        if resume_step is None:
            self._rewrite([])
        else:
            self._rewrite([r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step])

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not Path(path).is_file():
        return []
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill ends the usable log
    return records


def write_curves(metrics_path: Path, png_path: Path, title: str) -> None:
    """Loss terms, learning rate and validation AbsRel against the step, as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    loss_keys = sorted({k for r in train for k in r if k.startswith("loss")})
    for key in loss_keys:
        points = [(r["step"], r[key]) for r in train if key in r]
        axes[0].plot(*zip(*points), label=key) if points else None
    axes[0].set(title="training loss", xlabel="step", yscale="log" if _positive(train, loss_keys) else "linear")
    if loss_keys:
        axes[0].legend(fontsize=7)
    if train:
        axes[1].plot([r["step"] for r in train], [r["lr"] for r in train])
    axes[1].set(title="learning rate", xlabel="step")
    if val:
        axes[2].plot([r["step"] for r in val], [r["abs_rel"] for r in val], marker="o")
    axes[2].set(title="validation AbsRel", xlabel="step")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with replacing(png_path) as tmp:
            fig.savefig(tmp, dpi=90)
    finally:
        plt.close(fig)


def _positive(records: list[dict[str, Any]], keys: list[str]) -> bool:
    values = [r[k] for r in records for k in keys if k in r]
    return bool(values) and min(values) > 0

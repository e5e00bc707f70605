"""The demo's experiment at one scale, read from `configs/demo-<scale>.toml` (or any TOML given).

The TOML files are the documentation of the experiment: which splits, which resolution, which teacher and
student presets, how long each is trained. `DemoPlan` only validates and exposes them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcache.errors import KdcacheError

SCALES = ("micro", "tiny", "small", "full")
# The five ways the student is trained, with the batch sources each one sees (Hu et al.'s ablation).
STUDENT_VARIANTS: dict[str, dict[str, Any]] = {
    "gt-only": {"sources": ["labeled"], "targets": ["gt"]},
    "kd-labeled": {"sources": ["labeled"], "targets": ["gt", "kd"]},
    "kd-labeled-aux": {"sources": ["labeled", "aux"], "targets": ["gt", "kd"]},
    "kd-aux-only": {"sources": ["aux"], "targets": ["kd"]},
    "kd-labeled-aux-far": {"sources": ["labeled", "aux-far"], "targets": ["gt", "kd"]},
}


def configs_dir() -> Path:
    """The shipped TOMLs: `kdcache/configs/` in an installed wheel, else `configs/` of the source checkout.

    Both are the same files: pyproject.toml maps the checkout's `configs/` into the package as package data.
    """
    package = Path(__file__).resolve().parents[1]
    installed = package / "configs"
    return installed if installed.is_dir() else package.parent / "configs"


@dataclass
class StageConfig:
    """How one model (the teacher, or every student variant) is trained."""

    preset: str
    epochs: int
    batch_size: int
    lr: float
    gt_loss: dict[str, float] = field(default_factory=lambda: {"silog": 1.0})
    kd_loss: dict[str, float] = field(default_factory=lambda: {"kd": 1.0})
    options: dict[str, Any] = field(default_factory=dict)  # any other `kdcache train` option (warmup, augment, ...)


@dataclass
class DemoPlan:
    scale: str
    description: str
    resolution: tuple[int, int]
    splits: dict[str, str]  # role (teacher-train, train, val, test, aux, aux-far) -> split spec
    teacher: StageConfig
    student: StageConfig
    aux_ratio: float
    eval_protocol: str
    gallery_images: int
    expected_minutes: float
    source: Path
    targets: dict[str, float] = field(default_factory=dict)  # name in findings.TARGETS -> limit

    @property
    def summary(self) -> str:
        """The description's first line."""
        return self.description.strip().splitlines()[0] if self.description.strip() else self.scale

    @property
    def teacher_train(self) -> str:
        """The teacher's labeled images: by default the students' own labeled split."""
        return self.splits.get("teacher-train", self.splits["train"])

    @property
    def labeled_splits(self) -> list[str]:
        return [self.teacher_train, self.splits["val"]]

    @property
    def split_options(self) -> dict[str, Any]:
        """The synthetic world is rendered at the cache resolution: no resize, exact GT at that size."""
        return {"size": tuple(self.resolution)}

    @property
    def cached_splits(self) -> list[str]:
        return [self.splits[role] for role in ("train", "val", "aux", "aux-far")]


def _stage(raw: dict[str, Any], where: str) -> StageConfig:
    try:
        known = {"preset", "epochs", "batch_size", "lr", "gt_loss", "kd_loss"}
        options = {k: v for k, v in raw.items() if k not in known}
        return StageConfig(
            preset=raw["preset"],
            epochs=int(raw["epochs"]),
            batch_size=int(raw["batch_size"]),
            lr=float(raw["lr"]),
            gt_loss=dict(raw.get("gt_loss", {"silog": 1.0})),
            kd_loss=dict(raw.get("kd_loss", {"kd": 1.0})),
            options=options,
        )
    except KeyError as missing:
        raise KdcacheError(f"{where} has no {missing}: every stage needs preset, epochs, batch_size and lr") from None


def load_plan(scale: str = "tiny", config: str | Path | None = None) -> DemoPlan:
    """The plan for `scale` from configs/, or from the TOML file `config` when given."""
    if config is None:
        if scale not in SCALES:
            raise KdcacheError(f"unknown demo scale '{scale}': use one of {', '.join(SCALES)}")
        path = configs_dir() / f"demo-{scale}.toml"
    else:
        path = Path(config)
    if not path.is_file():
        raise KdcacheError(f"demo config {path} not found: pass --config PATH to a demo TOML (see configs/demo-tiny.toml)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise KdcacheError(f"{path} is not valid TOML: {err}") from None
    splits = raw.get("splits", {})
    missing = [role for role in ("train", "val", "test", "aux", "aux-far") if role not in splits]
    if missing:
        raise KdcacheError(f"{path} [splits] lacks {missing}: set train, val, test, aux and aux-far")
    return DemoPlan(
        scale=raw.get("scale", scale),
        description=raw.get("description", ""),
        resolution=tuple(raw.get("resolution", (96, 128))),
        splits=dict(splits),
        teacher=_stage(raw.get("teacher", {}), f"{path} [teacher]"),
        student=_stage(raw.get("student", {}), f"{path} [student]"),
        aux_ratio=float(raw.get("aux_ratio", 0.5)),
        eval_protocol=raw.get("eval", {}).get("protocol", "metric"),
        gallery_images=int(raw.get("eval", {}).get("gallery_images", 4)),
        expected_minutes=float(raw.get("expected_minutes", 0)),
        source=path,
        targets=_targets(raw.get("targets", {}), path),
    )


def _targets(raw: dict[str, Any], path: Path) -> dict[str, float]:
    from kdcache.demo.findings import TARGETS

    unknown = sorted(set(raw) - set(TARGETS))
    if unknown:
        raise KdcacheError(f"{path} [targets] has unknown {unknown}: use any of {', '.join(TARGETS)}")
    return {name: float(limit) for name, limit in raw.items()}

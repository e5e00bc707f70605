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
from kdcache.train.modes import LOSS_KINDS, MODES, mode_loss
from kdcache.train.train_config import DEFAULT_AUX_RATIO

SCALES = ("micro", "tiny", "small", "full")


# The student rows are the training modes (`kdcache.train.modes.MODES`, which `kdcache train --mode` takes): Hu et
# al.'s ablation (the five rows every demo trains), then distillation of the cached teacher features on top of KD +
# aux. A config's `rows` picks among them; the report keeps MODES' order.
HU_ROWS = ("gt-only", "kd-labeled", "kd-labeled-aux", "kd-aux-only", "kd-labeled-aux-far")
# Every experiment trains at least these: the baseline and the recipe are what the targets and the report compare.
# A finding whose rows an experiment leaves out (e.g. `full`, which spends its hours on seeds) is reported as not
# checked at that scale.
REQUIRED_ROWS = ("gt-only", "kd-labeled-aux")


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
    # The weights of each kind of loss (keys of LOSS_KINDS: gt, kd, feature, attention); `<kind>_loss` in the TOML.
    losses: dict[str, dict[str, float]] = field(default_factory=lambda: {k: dict(v) for k, v in LOSS_KINDS.items()})
    options: dict[str, Any] = field(default_factory=dict)  # any other `kdcache train` option (warmup, augment, ...)

    def row_loss(self, row: str) -> dict[str, float]:
        """The loss weights of the student row (training mode) `row`: its kinds' tables merged."""
        return mode_loss(row, self.losses)


@dataclass
class CacheOptions:
    """How the teacher is run over the students' images (`kdcache precompute` options of the teacher-cache step)."""

    flip_tta: bool = False
    # default | none | [layer, ...]; unset: the teacher's default layers when a row distils features, else none
    features: str | list[str] | None = None
    feature_budget: int | None = None  # bytes per sample; None: precompute's default


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
    targets: dict[str, float] = field(default_factory=dict)  # name in findings.THRESHOLDS -> limit
    rows: list[str] = field(default_factory=lambda: list(MODES))  # student rows (training modes), in MODES order
    seeds: int = 1  # every student row is trained with seeds 0 .. seeds-1 from the same teacher cache
    cache: CacheOptions = field(default_factory=CacheOptions)
    recommended: str = "kd-labeled-aux"  # the KD + aux row of the recipe this experiment recommends (its targets)

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

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds))


def _stage(raw: dict[str, Any], where: str) -> StageConfig:
    kinds = {f"{kind}_loss": kind for kind in LOSS_KINDS}
    try:
        known = {"preset", "epochs", "batch_size", "lr", *kinds}
        options = {k: v for k, v in raw.items() if k not in known}
        return StageConfig(
            preset=raw["preset"],
            epochs=int(raw["epochs"]),
            batch_size=int(raw["batch_size"]),
            lr=float(raw["lr"]),
            losses={kind: dict(raw.get(key, LOSS_KINDS[kind])) for key, kind in kinds.items()},
            options=options,
        )
    except KeyError as missing:
        raise KdcacheError(f"{where} has no {missing}: every stage needs preset, epochs, batch_size and lr") from None


def _rows(raw: Any, path: Path) -> list[str]:
    rows = list(MODES) if raw is None else list(raw)
    unknown = [row for row in rows if row not in MODES]
    missing = [row for row in REQUIRED_ROWS if row not in rows]
    if unknown or missing:
        problem = f"unknown rows {unknown}" if unknown else f"lacks the rows {missing}"
        raise KdcacheError(f"{path} `rows` {problem}: list any of {', '.join(MODES)}, including "
                           f"{', '.join(REQUIRED_ROWS)}")
    return [row for row in MODES if row in rows]


def _recommended(row: str, rows: list[str], path: Path) -> str:
    if not str(row).startswith("kd-labeled-aux") or row == "kd-labeled-aux-far" or row not in rows:
        raise KdcacheError(f"{path} `recommended` = {row!r} must be one of its KD + aux rows (kd-labeled-aux, "
                           "kd-labeled-aux+feat, kd-labeled-aux+attn)")
    return row


def check_seeds(seeds: Any, where: str = "--seeds") -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise KdcacheError(f"{where} must be a whole number >= 1, got {seeds!r}")
    return seeds


def _cache(raw: dict[str, Any], rows: list[str], path: Path) -> CacheOptions:
    unknown = sorted(set(raw) - {"flip_tta", "features", "feature_budget"})
    if unknown:
        raise KdcacheError(f"{path} [cache] has unknown {unknown}: use flip_tta, features or feature_budget")
    options = CacheOptions(**raw)
    if options.features is None:  # pay for teacher features only when a row distils them
        distils = any({"feature", "attention"} & set(MODES[row].losses) for row in rows)
        options.features = "default" if distils else "none"
    return options


def load_plan(scale: str = "tiny", config: str | Path | None = None, seeds: int | None = None) -> DemoPlan:
    """The plan for `scale` from configs/, or from the TOML file `config` when given; `seeds` overrides its own."""
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
    if seeds is not None:
        raw["seeds"] = check_seeds(seeds)
    rows = _rows(raw.get("rows"), path)
    return DemoPlan(
        scale=raw.get("scale", scale),
        description=raw.get("description", ""),
        resolution=tuple(raw.get("resolution", (96, 128))),
        splits=dict(splits),
        teacher=_stage(raw.get("teacher", {}), f"{path} [teacher]"),
        student=_stage(raw.get("student", {}), f"{path} [student]"),
        aux_ratio=float(raw.get("aux_ratio", DEFAULT_AUX_RATIO)),
        eval_protocol=raw.get("eval", {}).get("protocol", "metric"),
        gallery_images=int(raw.get("eval", {}).get("gallery_images", 4)),
        expected_minutes=float(raw.get("expected_minutes", 0)),
        source=path,
        targets=_targets(raw.get("targets", {}), path),
        rows=rows,
        seeds=check_seeds(raw.get("seeds", 1), f"{path} `seeds`"),
        cache=_cache(raw.get("cache", {}), rows, path),
        recommended=_recommended(raw.get("recommended", "kd-labeled-aux"), rows, path),
    )


def _targets(raw: dict[str, Any], path: Path) -> dict[str, float]:
    from kdcache.demo.findings import THRESHOLDS

    unknown = sorted(set(raw) - set(THRESHOLDS))
    if unknown:
        raise KdcacheError(f"{path} [targets] has unknown {unknown}: use any of {', '.join(THRESHOLDS)}")
    return {name: float(limit) for name, limit in raw.items()}

"""Training configuration: TOML sweep files and CLI options -> validated dataclasses.

A run reads one cache and one mix of *sources* (named store splits: `labeled`, `aux`, `aux-far`, ...);
every batch holds a fixed number of samples from each source. Each *variant* (student preset, loss
weights, lr, seed, the sources it trains on) sees only its own sources' rows of the shared batch, so K
variants cost one read/decode/augment pass instead of K.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdcache.errors import KdcacheError

# `mode` shorthands: which batch sources a variant trains on and which targets it uses.
# "gt" = the supervised loss where GT exists, "kd" = distillation where a teacher target exists.
MODES: dict[str, dict[str, Any]] = {
    "gt-only": {"sources": "labeled", "targets": ("gt",)},
    "kd-labeled": {"sources": "labeled", "targets": ("gt", "kd")},
    "kd-labeled-aux": {"sources": "all", "targets": ("gt", "kd")},
    "kd-aux-only": {"sources": "aux", "targets": ("kd",)},
}
DEFAULT_GT_LOSS = {"silog": 1.0}
DEFAULT_KD_LOSS = {"kd": 1.0}


@dataclass
class AugmentConfig:
    """Spatial transforms hit image, teacher, GT, valid and features alike; colour jitter the image only."""

    scale: tuple[float, float] = (0.7, 1.0)  # side of the random crop as a fraction of the image (1 = no crop)
    flip: bool = True
    jitter: float = 0.2  # max relative change of brightness / contrast / saturation (0 = off)
    enabled: bool = True


@dataclass
class VariantConfig:
    name: str
    student: str
    sources: list[str]
    loss: dict[str, float]
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    ema: float | None = None  # EMA decay, e.g. 0.999; None = off
    student_overrides: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False  # ImageNet encoder weights when available locally (else a logged from-scratch start)
    loss_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # e.g. {kd = {align = "lstsq"}}
    mode: str | None = None
    default_loss: bool = False  # no mode/loss given: GT + KD, minus KD when the cache has no teacher


@dataclass
class TrainConfig:
    cache: str
    out: str
    sources: dict[str, str]  # source name -> split spec in the store
    mix: dict[str, float]  # source name -> fraction of each batch
    variants: list[VariantConfig]
    val: str | None = None
    val_max_samples: int = 256
    epochs: int = 10
    steps: int | None = None  # total optimizer steps; overrides `epochs` when set
    batch_size: int = 16
    warmup: float = 0.05  # fraction of the total steps (or an int number of steps when >= 1)
    min_lr_ratio: float = 0.01
    clip_grad: float | None = 1.0
    amp: str = "auto"  # auto (bf16 on CUDA, off on CPU) | bf16 | fp16 | off
    device: str = "auto"
    workers: int = 2
    window_blocks: int = 2  # shuffle buffer, in store blocks (bounds memory whatever the cache size)
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0  # extra `last` checkpoints every N steps (0 = at epoch ends only)
    resume: bool = False
    resolution: tuple[int, int] | None = None  # refuse a cache of another resolution when given
    feature_layers: list[str] | None = None  # teacher layers feature losses distil (default: all cached)
    overwrite: bool = False  # replace an existing run in `out` instead of refusing
    sync_bn: bool = False  # SyncBatchNorm across ranks (multi-GPU runs with small per-GPU batches)
    # NHWC tensors for the students' convs: the same maths, ~30 % less time per step for MobileViT-XXS on a CPU
    # (oneDNN's fast path), and the usual layout for AMP convs on GPUs.
    channels_last: bool = True
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool | None = None  # None = only on a terminal

    @property
    def primary_source(self) -> str:
        """The source an epoch is a pass over: `labeled` when any variant uses it, else the first one used."""
        used = [s for s in self.sources if any(s in v.sources for v in self.variants)]
        return "labeled" if "labeled" in used else used[0]

    def variant_dir(self, variant: VariantConfig) -> Path:
        return Path(self.out) if len(self.variants) == 1 else Path(self.out) / variant.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def source_counts(config: TrainConfig) -> dict[str, int]:
    """Samples per batch from each source (fixed, so every batch and every rank has the same layout)."""
    used = {s: f for s, f in config.mix.items() if f > 0}
    total = sum(used.values())
    exact = {s: config.batch_size * f / total for s, f in used.items()}
    counts = {s: int(x) for s, x in exact.items()}
    # Largest remainder: a mix written as 0.3333/0.6667 still gives 8/8/8 of 24, and the counts sum to batch_size.
    for source in sorted(used, key=lambda s: counts[s] - exact[s])[: config.batch_size - sum(counts.values())]:
        counts[source] += 1
    return {s: c for s, c in counts.items() if c > 0}


def _parse_loss(text: str) -> dict[str, float]:
    """`"silog=1,kd=0.5"` -> {"silog": 1.0, "kd": 0.5}."""
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise KdcacheError(f"bad loss weight '{part}': write NAME=WEIGHT, e.g. silog=1,kd=0.5") from None
    return weights


def _variant_from_mode(mode: str, sources: list[str], gt_loss: dict, kd_loss: dict) -> tuple[list[str], dict]:
    if mode not in MODES:
        raise KdcacheError(f"unknown training mode '{mode}': use one of {', '.join(MODES)}")
    spec = MODES[mode]
    aux = [s for s in sources if s != "labeled"]
    chosen = {"labeled": ["labeled"], "aux": aux, "all": list(sources)}[spec["sources"]]
    chosen = [s for s in chosen if s in sources]
    if not chosen:
        need = "--labeled" if spec["sources"] == "labeled" else "--aux"
        raise KdcacheError(f"mode '{mode}' needs a {spec['sources']} source: pass {need} SPLIT")
    loss: dict[str, float] = {}
    if "gt" in spec["targets"]:
        loss.update(gt_loss)
    if "kd" in spec["targets"]:
        loss.update(kd_loss)
    return chosen, loss


def build_variant(raw: dict[str, Any], defaults: dict[str, Any], sources: list[str], index: int) -> VariantConfig:
    """One `[[variant]]` table (missing keys from the top-level defaults)."""
    merged = {**defaults, **raw}
    known = {f.name for f in dataclasses.fields(VariantConfig)} | {"gt_loss", "kd_loss"}
    unknown = set(raw) - known
    if unknown:
        raise KdcacheError(f"unknown variant key(s) {sorted(unknown)}: allowed are {sorted(known)}")
    if "student" not in merged:
        raise KdcacheError(f"variant {index} has no student: set `student = \"NAME\"` (`kdcache students` lists them)")
    loss = merged.get("loss")
    loss = _parse_loss(loss) if isinstance(loss, str) else loss
    mode = merged.get("mode")
    variant_sources = merged.get("sources")
    if mode:
        mode_sources, mode_loss = _variant_from_mode(
            mode, sources, merged.get("gt_loss", DEFAULT_GT_LOSS), merged.get("kd_loss", DEFAULT_KD_LOSS)
        )
        variant_sources = variant_sources or mode_sources
        loss = loss or mode_loss
    variant_sources = variant_sources or list(sources)
    missing = [s for s in variant_sources if s not in sources]
    if missing:
        raise KdcacheError(f"variant {index} trains on unknown source(s) {missing}: known sources are {sources}")
    default_loss = not loss
    if default_loss:
        # GT where there is GT, distillation everywhere; a cache without a teacher drops the latter later.
        loss = {**(DEFAULT_GT_LOSS if "labeled" in variant_sources else {}), **DEFAULT_KD_LOSS}
    name = merged.get("name") or (f"{merged['student']}-{mode}" if mode else merged["student"])
    return VariantConfig(
        name=name,
        student=merged["student"],
        sources=list(variant_sources),
        loss={k: float(v) for k, v in loss.items()},
        lr=float(merged.get("lr", 1e-3)),
        weight_decay=float(merged.get("weight_decay", 0.01)),
        seed=int(merged.get("seed", 0)),
        ema=merged.get("ema"),
        student_overrides=dict(merged.get("student_overrides", {})),
        pretrained=bool(merged.get("pretrained", False)),
        loss_options={k: dict(v) for k, v in merged.get("loss_options", {}).items()},
        mode=mode,
        default_loss=default_loss,
    )


_VARIANT_DEFAULT_KEYS = ("student", "loss", "gt_loss", "kd_loss", "lr", "weight_decay", "seed", "ema",
                         "student_overrides", "pretrained", "loss_options", "mode", "sources")


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build and validate a `TrainConfig` from a TOML-shaped dict (see configs/train-sweep.toml)."""
    raw = dict(raw)
    for key in ("cache", "out"):
        if not raw.get(key):
            raise KdcacheError(f"training config has no `{key}`: set it in the TOML or pass --{key}")
    sources = dict(raw.pop("sources", {}) or {})
    if not sources:
        raise KdcacheError("no training data: pass --labeled SPLIT and/or --aux SPLIT (or a [sources] table)")
    mix = {k: float(v) for k, v in (raw.pop("mix", None) or default_mix(sources, raw.pop("aux_ratio", None))).items()}
    if set(mix) - set(sources):
        raise KdcacheError(f"[mix] names unknown source(s) {sorted(set(mix) - set(sources))}: add them to [sources]")
    raw.pop("aux_ratio", None)
    # `seed` at the top level is both the run's (batch order, augmentation) and every variant's default.
    defaults = {k: raw[k] if k == "seed" else raw.pop(k) for k in _VARIANT_DEFAULT_KEYS if k in raw}
    variant_tables = raw.pop("variant", None) or [{}]
    variants = [build_variant(v, defaults, list(sources), i) for i, v in enumerate(variant_tables)]
    _dedupe_names(variants)
    augment = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.pop("augment", {}).items()})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(raw) - known
    if unknown:
        raise KdcacheError(f"unknown training option(s) {sorted(unknown)}: allowed are {sorted(known)}")
    if "resolution" in raw and raw["resolution"] is not None:
        raw["resolution"] = tuple(raw["resolution"])
    config = TrainConfig(sources=sources, mix=mix, variants=variants, augment=augment, **raw)
    validate(config)
    return config


def default_mix(sources: dict[str, str], aux_ratio: float | None) -> dict[str, float]:
    """Labeled gets 1 - aux_ratio of each batch, the aux sources share aux_ratio equally."""
    aux = [s for s in sources if s != "labeled"]
    if "labeled" not in sources:
        return {s: 1.0 / len(aux) for s in aux}
    if not aux:
        return {"labeled": 1.0}
    ratio = 0.5 if aux_ratio is None else float(aux_ratio)
    if not 0.0 <= ratio < 1.0:
        raise KdcacheError(f"--aux-ratio {ratio} is out of range: use a fraction in [0, 1)")
    return {"labeled": 1.0 - ratio, **{s: ratio / len(aux) for s in aux}}


def _dedupe_names(variants: list[VariantConfig]) -> None:
    seen: dict[str, int] = {}
    for variant in variants:
        count = seen.get(variant.name, 0)
        seen[variant.name] = count + 1
        if count:
            variant.name = f"{variant.name}-{count + 1}"


def validate(config: TrainConfig) -> None:
    if config.batch_size < 1:
        raise KdcacheError(f"--batch-size {config.batch_size} must be >= 1")
    if config.steps is not None and config.steps < 1:
        raise KdcacheError(f"--steps {config.steps} must be >= 1")
    if config.epochs < 1:
        raise KdcacheError(f"--epochs {config.epochs} must be >= 1")
    if config.amp not in ("auto", "bf16", "fp16", "off"):
        raise KdcacheError(f"--amp {config.amp}: use auto, bf16, fp16 or off")
    lo, hi = config.augment.scale
    if not 0.0 < lo <= hi <= 1.0:
        raise KdcacheError(f"augment scale {config.augment.scale} must satisfy 0 < min <= max <= 1")
    counts = source_counts(config)
    for variant in config.variants:
        starved = [s for s in variant.sources if counts.get(s, 0) == 0]
        if starved:
            raise KdcacheError(
                f"variant '{variant.name}' trains on {starved} but the batch holds no such samples: "
                f"raise --batch-size or the [mix] fraction of {starved[0]}"
            )


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise KdcacheError(f"config file {path} does not exist: pass a TOML file such as configs/train-sweep.toml")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise KdcacheError(f"{path} is not valid TOML ({err}): fix the file") from None


def config_json(config: TrainConfig, variant: VariantConfig, extra: dict[str, Any]) -> str:
    """The config.json of one variant's run directory: the whole run config plus which variant this is."""
    payload = {**config.to_dict(), "variant": dataclasses.asdict(variant), **extra}
    return json.dumps(payload, indent=2, default=str)

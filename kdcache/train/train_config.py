"""Training configuration: TOML sweep files and CLI options -> validated dataclasses.

A run reads one cache and one mix of *sources* (named store splits: `labeled`, `aux`, `aux-far`, ...);
every batch holds a fixed number of samples from each source. Each *variant* (student preset, loss
weights, lr, seed, the sources it trains on) sees only its own sources' rows of the shared batch, so K
variants cost one read/decode/augment pass instead of K.

Every default is a field default below. A variant's settings (`VariantConfig`'s fields and the per-kind loss
tables `gt_loss`, `kd_loss`, ...) may also be given at the top level of a config, as the default of every
`[[variant]]`; `seed` there also seeds the run's batch order and augmentation.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, ClassVar

from kdcache.config import Config, format_hw, setting, storage_options_setting
from kdcache.errors import KdcacheError
from kdcache.setting_checks import AT_LEAST_ONE, FRACTION, NON_NEGATIVE, POSITIVE, Bounds, check_value
from kdcache.sizes import parse_hw
from kdcache.train.modes import GT_LOSS, KD_LOSS, LOSS_TABLE_KEYS, MODES, get_mode, mode_loss, mode_sources


# The share of each batch the aux sources get together unless a config sets `aux_ratio` (or a [mix]).
DEFAULT_AUX_RATIO = 0.5


def parse_loss(text: str, option: str = "--loss") -> dict[str, float]:
    """`"silog=1,kd=0.5"` -> {"silog": 1.0, "kd": 0.5}."""
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            weights[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise KdcacheError(f"bad {option} weight '{part}': write NAME=WEIGHT, e.g. silog=1,kd=0.5") from None
    return weights


@dataclasses.dataclass
class AugmentConfig(Config):
    """Spatial transforms hit image, teacher, GT, valid and features alike; colour jitter the image only."""

    LABEL: ClassVar[str] = "augment"

    scale: tuple[float, float] = setting((0.7, 1.0))  # side of the random crop as a fraction of the image (1 = no crop)
    flip: bool = setting(True)
    jitter: float = setting(0.2, bounds=NON_NEGATIVE)  # max relative change of brightness / contrast / saturation (0 = off)
    enabled: bool = setting(True)

    def validate(self) -> None:
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise KdcacheError(f"augment scale {self.scale} must satisfy 0 < min <= max <= 1")


@dataclasses.dataclass
class VariantConfig(Config):
    """One student trained in the run (a `[[variant]]` table, resolved: its sources and loss weights are set)."""

    LABEL: ClassVar[str] = "variant"

    name: str
    student: str
    sources: list[str]
    loss: dict[str, float] = setting(flag="--loss", parse=parse_loss, help="Loss weights, e.g. silog=1,kd=1.")
    lr: float = setting(1e-3, flag="--lr", bounds=POSITIVE, help="Peak learning rate (AdamW, warm-up then cosine).")
    weight_decay: float = setting(0.01, flag="--weight-decay", bounds=NON_NEGATIVE, help="AdamW weight decay.")
    seed: int = setting(0)  # the flag is TrainConfig.seed's: at the top level it seeds the run and every variant
    ema: float | None = setting(None, flag="--ema", bounds=Bounds(0, 1, open_high=True), help="EMA decay of the weights, e.g. 0.999 (off by default).")
    student_overrides: dict[str, Any] = setting(factory=dict)
    # On by default, like every peer's student (Hu et al., FastDepth, MobileViT); weights that cannot be had refuse
    # the run instead of silently training another experiment from scratch (kdcache.students.encoders).
    pretrained: bool = setting(True, flag="--pretrained", style="switch",
                               help="Start the encoder from ImageNet weights (local HF / torch cache, else the hub); "
                                    "--no-pretrained trains it from scratch.")
    loss_options: dict[str, dict[str, Any]] = setting(factory=dict)  # e.g. {kd = {align = "lstsq"}}
    mode: str | None = setting(None, flag="--mode", help=f"Training mode: {' | '.join(MODES)}.")
    default_loss: bool = setting(False)  # derived: no mode/loss given -> GT + KD, minus KD without a teacher

    @classmethod
    def keys(cls) -> list[str]:
        """What a [[variant]] (or the top level, for every variant) may set: not the derived `default_loss`."""
        return [name for name in super().keys() if name != "default_loss"] + list(LOSS_TABLE_KEYS)

    def to_dict(self) -> dict[str, Any]:
        """A variant with the default loss is written without it, so a cache without a teacher still drops KD
        when the config is read back."""
        data = super().to_dict()
        data.pop("default_loss")
        if self.default_loss:
            data.pop("loss")
        return data


@dataclasses.dataclass
class TrainConfig(Config):
    """One pass over `cache` training every variant (see configs/train-sweep.toml)."""

    LABEL: ClassVar[str] = "train"
    COMMAND: ClassVar[tuple[str, ...]] = ("kdcache", "train")

    cache: str = setting(flag="--cache", help="Cache URL (a `kdcache precompute --out`).")
    out: str = setting(flag="--out", help="Run directory (one sub-dir per variant).")
    storage_options: dict[str, Any] = storage_options_setting()
    read_cache: str | None = setting(None, flag="--read-cache",
                                     help="Folder keeping local copies of a remote cache's shards, so epochs after "
                                          "the first read the local disk (default: $KDCACHE_READ_CACHE, else "
                                          "~/.cache/kdcache/reads; `off`: none).")
    read_cache_gib: float = setting(50.0, flag="--read-cache-gib", bounds=Bounds(0, open_low=True),
                                    help="Bound of the read cache folder in GiB (least recently used copies go "
                                         "first).")
    sources: dict[str, str] = setting(factory=dict)  # source name -> split spec in the store
    mix: dict[str, float] = setting(factory=dict)  # source name -> fraction of each batch
    variants: list[VariantConfig] = setting(factory=list)  # the TOML's [[variant]] tables
    val: str | None = setting(None, flag="--val", help="Labeled split of the cache for checkpoints/best.")
    val_max_samples: int = setting(256, flag="--val-max-samples", bounds=AT_LEAST_ONE, help="Validation images scored at most.")
    epochs: int = setting(10, flag="--epochs", bounds=AT_LEAST_ONE, help="Passes over the labeled (or aux-only) split.")
    steps: int | None = setting(None, flag="--steps", bounds=AT_LEAST_ONE, help="Total optimizer steps (instead of --epochs).")
    batch_size: int = setting(16, flag="--batch-size", bounds=AT_LEAST_ONE, help="Samples per batch, shared by every variant.")
    warmup: float = setting(0.05, flag="--warmup", bounds=NON_NEGATIVE, help="Warm-up: fraction of steps, or steps if >= 1.")
    min_lr_ratio: float = setting(0.01, bounds=FRACTION)  # the cosine schedule's floor, as a fraction of the peak lr
    clip_grad: float = setting(1.0, flag="--clip-grad", bounds=NON_NEGATIVE, help="Max gradient norm (0 = off).")
    amp: str = setting("auto", flag="--amp", help="auto (bf16 on CUDA, off on CPU) | bf16 | fp16 | off.")
    device: str = setting("auto", flag="--device", help="auto | cpu | cuda | cuda:N.")
    workers: int | None = setting(None, flag="--workers", bounds=NON_NEGATIVE,
                                  help="Data loader worker processes (default: 2; the count is part of the batch "
                                       "order).")
    window_blocks: int = setting(2, bounds=AT_LEAST_ONE)  # shuffle buffer, in store blocks (bounds memory whatever the cache size)
    seed: int = setting(0, flag="--seed", help="Seed of the batch order and augmentation, and of every variant "
                                               "that sets none of its own.")
    log_every: int = setting(10, flag="--log-every", bounds=AT_LEAST_ONE, help="Log the training loss every N steps.")
    checkpoint_every: int = setting(0, flag="--checkpoint-every", bounds=NON_NEGATIVE,
                                    help="Extra checkpoints every N steps (0 = at epoch ends only).")
    resume: bool = setting(False, flag="--resume", style="flag", help="Continue the interrupted run in --out exactly.")
    resolution: tuple[int, int] | None = setting(None, flag="--resolution", parse=parse_hw, text=format_hw,
                                                 help="Refuse a cache not at HxW.")
    feature_layers: list[str] | None = setting(None, flag="--feature-layer", style="repeat",
                                               help="Teacher layer to distil (repeat; default: all cached).")
    overwrite: bool = setting(False, flag="--overwrite", style="flag", help="Replace an existing run in --out.")
    sync_bn: bool = setting(False, flag="--sync-bn", style="flag", help="SyncBatchNorm across GPUs under torchrun.")
    # NHWC tensors for the students' convs: the same maths, ~30 % less time per step for MobileViT-XXS on a CPU
    # (oneDNN's fast path), and the usual layout for AMP convs on GPUs.
    channels_last: bool = setting(True)
    augment: AugmentConfig = setting(factory=AugmentConfig)
    progress: bool | None = setting(None)  # None = only on a terminal

    @property
    def primary_source(self) -> str:
        """The source an epoch is a pass over: `labeled` when any variant uses it, else the first one used."""
        used = [s for s in self.sources if any(s in v.sources for v in self.variants)]
        return "labeled" if "labeled" in used else used[0]

    def variant_dir(self, variant: VariantConfig) -> Path:
        return Path(self.out) if len(self.variants) == 1 else Path(self.out) / variant.name

    # -- reading: the TOML shape -------------------------------------------------------------------------
    @classmethod
    def run_keys(cls) -> list[str]:
        return [name for name in super().keys() if name != "variants"] + ["variant", "aux_ratio"]

    @classmethod
    def keys(cls) -> list[str]:
        """The run's settings (with `variant` for its tables and `aux_ratio` for a mix), plus every variant's, whose
        top-level values are the defaults of each [[variant]]."""
        return list(dict.fromkeys(cls.run_keys() + VariantConfig.keys()))

    @classmethod
    def merge(cls, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        """A ratio given replaces the file's [mix]; students given replace its [[variant]] tables."""
        if overrides.get("aux_ratio") is not None:
            base = {k: v for k, v in base.items() if k != "mix"}
        return super().merge(base, overrides)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        raw = dict(raw)
        cls.check_keys(raw, cls.keys())
        for key in ("cache", "out"):
            if not raw.get(key):
                raise KdcacheError(f"training config has no `{key}`: set it in the TOML or pass --{key}")
        for key, hint in _RESHAPED.items():  # read into other shapes before the dataclass checks its fields
            check_value(cls.LABEL, key, raw.get(key), hint)
        sources = dict(raw.pop("sources", None) or {})
        if not sources:
            raise KdcacheError("no training data: pass --labeled SPLIT and/or --aux SPLIT (or a [sources] table)")
        aux_ratio = raw.pop("aux_ratio", None)
        mix = {k: float(v) for k, v in (raw.pop("mix", None) or default_mix(sources, aux_ratio)).items()}
        if set(mix) - set(sources):
            raise KdcacheError(f"[mix] names unknown source(s) {sorted(set(mix) - set(sources))}: add them to [sources]")
        run_keys = cls.run_keys()
        defaults = {k: raw[k] for k in VariantConfig.keys() if k in raw}
        raw = {k: v for k, v in raw.items() if k in run_keys}  # `seed` is both: the run's and each variant's default
        variants = [build_variant(table, defaults, list(sources), index)
                    for index, table in enumerate(raw.pop("variant", None) or [{}])]
        _dedupe_names(variants)
        augment = raw.pop("augment", None) or {}
        augment = augment if isinstance(augment, AugmentConfig) else AugmentConfig.from_dict(augment)
        config = cls(sources=sources, mix=mix, variants=variants, augment=augment, **raw)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped: every variant as a resolved [[variant]] table."""
        data = super().to_dict()
        data["variant"] = data.pop("variants")
        return data

    def validate(self) -> None:
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise KdcacheError(f"--amp {self.amp}: use auto, bf16, fp16 or off")
        self.augment.validate()
        counts = source_counts(self)
        for variant in self.variants:
            starved = [s for s in variant.sources if counts.get(s, 0) == 0]
            if starved:
                raise KdcacheError(
                    f"variant '{variant.name}' trains on {starved} but the batch holds no such samples: "
                    f"raise --batch-size or the [mix] fraction of {starved[0]}"
                )


# Keys of a TOML that `from_dict` / `build_variant` reshape before the dataclasses see them, with their TOML types.
_RESHAPED = {"sources": dict[str, str] | None, "mix": dict[str, float] | None, "aux_ratio": float | None,
             "variant": list[dict] | None, "augment": dict | AugmentConfig | None}
_VARIANT_RESHAPED = {"loss": str | dict[str, float] | None, "student": str | None, "mode": str | None,
                     "sources": list[str] | None, **{key: dict | None for key in LOSS_TABLE_KEYS}}


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


def build_variant(raw: dict[str, Any], defaults: dict[str, Any], sources: list[str], index: int) -> VariantConfig:
    """One `[[variant]]` table, its missing keys from the top-level `defaults`, resolved: sources and loss set."""
    known = VariantConfig.keys()
    unknown = set(raw) - set(known)
    if unknown:
        raise KdcacheError(f"unknown variant key(s) {sorted(unknown)}: allowed are {sorted(known)}")
    merged = {**defaults, **raw}
    for key, hint in _VARIANT_RESHAPED.items():
        check_value(VariantConfig.LABEL, key, merged.get(key), hint)
    if "student" not in merged:
        raise KdcacheError(f"variant {index} has no student: set `student = \"NAME\"` (`kdcache students` lists them)")
    tables = {key[: -len("_loss")]: merged.pop(key) for key in LOSS_TABLE_KEYS if key in merged}
    loss = merged.get("loss")
    loss = parse_loss(loss) if isinstance(loss, str) else loss
    mode, variant_sources = merged.get("mode"), merged.get("sources")
    if mode:
        get_mode(mode)
        variant_sources = variant_sources or mode_sources(mode, sources)
        loss = loss or mode_loss(mode, tables)
    variant_sources = list(variant_sources or sources)
    missing = [s for s in variant_sources if s not in sources]
    if missing:
        raise KdcacheError(f"variant {index} trains on unknown source(s) {missing}: known sources are {sources}")
    default_loss = not loss
    if default_loss:
        # GT where there is GT, distillation everywhere; a cache without a teacher drops the latter later.
        loss = {**(GT_LOSS if "labeled" in variant_sources else {}), **KD_LOSS}
    settings = {k: v for k, v in merged.items() if k in VariantConfig.keys()}
    return VariantConfig(**{
        **settings,
        "name": merged.get("name") or (f"{merged['student']}-{mode}" if mode else merged["student"]),
        "sources": variant_sources,
        "loss": {k: float(v) for k, v in loss.items()},
        "default_loss": default_loss,
    })


def default_mix(sources: dict[str, str], aux_ratio: float | None) -> dict[str, float]:
    """Labeled gets 1 - aux_ratio of each batch, the aux sources share aux_ratio equally."""
    aux = [s for s in sources if s != "labeled"]
    if "labeled" not in sources:
        return {s: 1.0 / len(aux) for s in aux}
    if not aux:
        return {"labeled": 1.0}
    ratio = DEFAULT_AUX_RATIO if aux_ratio is None else float(aux_ratio)
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


def variant_fingerprint(config: TrainConfig, variant: VariantConfig, total_steps: int, world_size: int,
                        cache_identity: str) -> dict:
    """What a variant's checkpoint must match to be resumed (or reused): the batches it saw (the cache's identity
    included: the same path rebuilt with another teacher holds other targets) and how it trained."""
    return json.loads(json.dumps({
        "cache": config.cache, "cache_identity": cache_identity, "sources": config.sources, "mix": config.mix,
        "batch_size": config.batch_size,
        "seed": config.seed, "augment": dataclasses.asdict(config.augment), "world_size": world_size,
        "variant": dataclasses.asdict(variant), "total_steps": total_steps,
    }, default=str))


def config_json(config: TrainConfig, variant: VariantConfig, extra: dict[str, Any]) -> str:
    """The config.json of one variant's run directory: the whole run config plus which variant this is."""
    payload = {**dataclasses.asdict(config), "variant": dataclasses.asdict(variant), **extra}
    payload["storage_options"] = {key: "***" if re.search(r"key|secret|token|password", key, re.I) else value
                                  for key, value in config.storage_options.items()}  # no credentials in run dirs
    return json.dumps(payload, indent=2, default=str)

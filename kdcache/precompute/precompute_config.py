"""`PrecomputeConfig`: everything `precompute(config)` takes, each default and each `kdcache precompute` flag
stated once (the CLI's options, `--print-config` and the demo's printed commands are read from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from kdcache.config import (Config, format_hw, format_option_value, name_text, parse_pairs, reader_options, setting,
                            storage_options_setting)
from kdcache.errors import KdcacheError
from kdcache.sizes import parse_hw


def parse_shard(text: str, option: str = "--shard") -> tuple[int, int]:
    """`1/4` -> (1, 4)."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise KdcacheError(f"bad {option} '{text}': use i/N, e.g. 0/4") from None
    return index, count


def parse_layers(text: str, option: str = "--features") -> str | list[str]:
    """`default`, `none` or `LAYER,LAYER`."""
    if text in ("default", "none"):
        return text
    return [layer.strip() for layer in text.split(",") if layer.strip()]


def _layers_text(layers: str | list[str]) -> str:
    return layers if isinstance(layers, str) else ",".join(layers)


@dataclass
class PrecomputeConfig(Config):
    """Run `teacher` once over `splits` into the store at `out`."""

    LABEL: ClassVar[str] = "precompute"
    COMMAND: ClassVar[tuple[str, ...]] = ("kdcache", "precompute")

    teacher: Any = setting(flag="--teacher", text=name_text,
                           help="Teacher name (`kdcache teachers`), hf:ID, ckpt:PATH or none (images and GT only).")
    splits: list[str] = setting(flag="--split", style="repeat",
                                help="Split to cache (repeatable), e.g. nyu-train, folder:/data/x.")
    out: str = setting(flag="--out", help="Store path or fsspec URL (file://, s3://, gs://).")
    storage_options: dict[str, Any] = storage_options_setting()
    resolution: tuple[int, int] = setting((240, 320), flag="--resolution", parse=parse_hw, text=format_hw,
                                          help="Cache resolution HxW (centre-crop + resize).")
    batch_size: int = setting(16, flag="--batch-size", help="Teacher batch size.")
    device: str = setting("auto", flag="--device", help="auto (the GPU if there is one; cuda:LOCAL_RANK under "
                                                         "torchrun), cpu, cuda, cuda:1, ...")
    precision: str = setting("fp32", flag="--precision", help="fp32|fp16|bf16 (autocast on GPU only).")
    # `default`: the teacher's default layers, `none`: no features, or a list of layer names. None by default:
    # pooled features were ~45 % of a store's bytes, and distilling them did not help the recommended recipe at
    # the demo's full scale (docs/results.md), so only a cache for feature or attention losses pays for them.
    feature_layers: str | list[str] = setting("none", flag="--features", parse=parse_layers, text=_layers_text,
                                              help="Teacher feature layers to cache for feature / attention "
                                                   "distillation: none (default), default (the teacher's), or "
                                                   "LAYER,LAYER.")
    feature_grid: tuple[int, int] | None = setting(None, flag="--feature-grid", parse=parse_hw, text=format_hw,
                                                   help="Pooled grid HxW (default: 1/8 of the resolution).")
    feature_budget: int | None = setting(None, flag="--feature-budget",
                                         help="Feature bytes per sample (default: the image's); PCA reduces "
                                              "channels to fit.")
    flip_tta: bool = setting(False, flag="--flip-tta", style="flag",
                             help="Average the teacher with its horizontally flipped prediction.")
    shard: tuple[int, int] | None = setting(None, flag="--shard", parse=parse_shard, text=lambda s: f"{s[0]}/{s[1]}",
                                            help="Fill only shards s with s % N == i (run N processes; default "
                                                 "under torchrun: RANK/WORLD_SIZE).")
    workers: int | None = setting(None, flag="--workers",
                                  help="Image decoding processes (default: the CPU cores - 1, at most 8).")
    writer_threads: int | None = setting(None, flag="--writer-threads",
                                         help="Shard encoding threads (default: cores / 2, 2 to 8).")
    strict: bool | None = setting(None, flag="--strict", style="switch",
                                  help="Stop on unreadable samples (default: only for labeled splits).")
    shard_size: int = setting(64, flag="--shard-size", help="Samples per shard file (unit of writing and resuming).")
    data_root: str | None = setting(None, flag="--data-root", help="Dataset root (default: $KDCACHE_DATA or ./data).")
    # Reader options for every split, e.g. {"size": (96, 128)} renders the synthetic world at the cache resolution
    # instead of rendering larger and resizing; recorded in the manifest.
    split_options: dict[str, Any] = setting(factory=dict, flag="--split-option", style="pairs", parse=parse_pairs,
                                            text=format_option_value,
                                            help="Reader option for every split, KEY=VALUE (repeatable), e.g. "
                                                 "size=96x128 (synthetic world), gt=filled (NYU), fps=5 (video:), "
                                                 "depth=COLUMN (dataset:).")
    pca_fit_samples: int = setting(32)  # samples the feature PCA is fitted on (library only)

    def __post_init__(self) -> None:
        if self.feature_layers is None:  # Python callers' "nothing said"
            self.feature_layers = "none"
        super().__post_init__()
        self.out = str(self.out)
        self.split_options = reader_options(self.split_options)

    def validate(self) -> None:
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            raise KdcacheError(f"bad resolution {self.resolution}: use HxW with positive sizes, e.g. 240x320")
        if self.batch_size < 1 or self.shard_size < 1:
            raise KdcacheError("--batch-size and --shard-size must be >= 1")
        if self.shard is not None and not (self.shard[1] >= 1 and 0 <= self.shard[0] < self.shard[1]):
            raise KdcacheError(f"bad --shard {self.shard[0]}/{self.shard[1]}: use i/N with 0 <= i < N")
        for flag, value, least in (("--workers", self.workers, 0), ("--writer-threads", self.writer_threads, 1)):
            if value is not None and value < least:
                raise KdcacheError(f"{flag} {value} must be >= {least}")


def repair_command(url: str, manifest: dict, specs: list[str]) -> str:
    """The `kdcache precompute` command that redoes the damaged shards of splits `specs` of the store at `url`
    (its teacher and options, read back from the manifest): a rerun finds them and redoes only those."""
    try:
        teacher = manifest.get("teacher") or {}
        features = manifest.get("features") or {}
        entry = manifest["splits"][specs[0]]
        config = PrecomputeConfig(
            teacher=teacher.get("name", "none"), splits=list(specs), out=url,
            resolution=tuple(manifest["resolution"]), shard_size=int(manifest["shard_size"]),
            precision=teacher.get("precision", "fp32"), flip_tta=bool(teacher.get("flip_tta", False)),
            feature_layers=list(features.get("layers") or []) or "none",
            feature_grid=tuple(features["grid"]) if features.get("grid") else None,
            feature_budget=features.get("budget_bytes"), split_options=manifest.get("split_options") or {},
            data_root=entry.get("root"),
        )
        return config.command()
    except (KdcacheError, KeyError, TypeError, ValueError, AttributeError):  # a manifest too odd to read back
        return f"kdcache precompute --out {url} ..."  # the teacher and options `kdcache cache info` shows

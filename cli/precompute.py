"""`kdcache precompute`: run a teacher once over splits into a resumable Zarr v3 cache."""

from __future__ import annotations

import re
from typing import List, Optional

import typer

from kdcache.errors import KdcacheError
from kdcache.sizes import parse_hw


def parse_shard(text: str) -> tuple[int, int]:
    """`1/4` -> (1, 4)."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise KdcacheError(f"bad --shard '{text}': use i/N, e.g. 0/4") from None
    return index, count


def parse_layers(text: str):
    if text in ("default", "none"):
        return text
    return [layer.strip() for layer in text.split(",") if layer.strip()]


def parse_split_options(items: List[str]) -> dict:
    """`["size=96x128", "gt=filled"]` -> {"size": (96, 128), "gt": "filled"} (HxW, ints and floats parsed)."""
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise KdcacheError(f"bad --split-option '{item}': use KEY=VALUE, e.g. size=96x128 or gt=filled")
        options[key.strip()] = _parse_value(text.strip(), f"--split-option {key.strip()}")
    return options


def _parse_value(text: str, option: str):
    if re.fullmatch(r"\d+x\d+", text):
        return parse_hw(text, option)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def precompute_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher name (`kdcache teachers`), hf:ID, ckpt:PATH or none."),
    split: List[str] = typer.Option(..., "--split", help="Split to cache (repeatable), e.g. nyu-train, folder:/data/x."),
    out: str = typer.Option(..., "--out", help="Store path or fsspec URL (file://, s3://, gs://)."),
    resolution: str = typer.Option("240x320", "--resolution", help="Cache resolution HxW (centre-crop + resize)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Teacher batch size."),
    device: str = typer.Option("auto", "--device", help="auto (the GPU if there is one; cuda:LOCAL_RANK under torchrun), cpu, cuda, cuda:1, ..."),
    precision: str = typer.Option("fp32", "--precision", help="fp32|fp16|bf16 (autocast on GPU only)."),
    features: str = typer.Option("default", "--features", help="Layers to cache: default, none, or LAYER,LAYER."),
    feature_grid: Optional[str] = typer.Option(None, "--feature-grid", help="Pooled grid HxW (default: 1/8 of the resolution)."),
    feature_budget: Optional[int] = typer.Option(None, "--feature-budget", help="Feature bytes per sample (default: the image's); PCA reduces channels to fit."),
    flip_tta: bool = typer.Option(False, "--flip-tta", help="Average the teacher with its horizontally flipped prediction."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Fill only shards s with s % N == i (run N processes; default under torchrun: RANK/WORLD_SIZE)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Decoding processes (default: cores - 1, max 8)."),
    writer_threads: Optional[int] = typer.Option(None, "--writer-threads", min=1, help="Shard encoding threads (default: cores / 2, 2 to 8)."),
    strict: Optional[bool] = typer.Option(None, "--strict/--no-strict", help="Stop on unreadable samples (default: only for labeled splits)."),
    shard_size: int = typer.Option(64, "--shard-size", min=1, help="Samples per shard file (unit of writing and resuming)."),
    split_option: List[str] = typer.Option([], "--split-option", help="Reader option for every split, KEY=VALUE (repeatable), e.g. size=96x128 (synthetic world), gt=filled (NYU)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Dataset root (default: $KDCACHE_DATA or ./data)."),
) -> None:
    """Run a teacher once over splits into a resumable Zarr v3 cache (rerun the same command to resume)."""
    from kdcache.cli.cache import show_store
    from kdcache.errors import check_writable, writing_to
    from kdcache.precompute import precompute
    from kdcache.store.backend import local_path

    if local_path(out) is not None:
        check_writable(local_path(out))
    # Shards are written whole and flagged done last: after a full disk the same command continues.
    with writing_to(out, rerun="rerun the same command to continue"):
        url = precompute(
            teacher, split, out, resolution=parse_hw(resolution, "--resolution"), batch_size=batch_size,
            device=device, precision=precision, feature_layers=parse_layers(features),
            feature_grid=parse_hw(feature_grid, "--feature-grid"),
            feature_budget=feature_budget, flip_tta=flip_tta, shard=parse_shard(shard) if shard else None,
            workers=workers, writer_threads=writer_threads, strict=strict, shard_size=shard_size,
            root=data_root, split_options=parse_split_options(split_option),
        )
    show_store(url)


def register(app: typer.Typer) -> None:
    app.command("precompute")(precompute_command)

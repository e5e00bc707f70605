"""`kdcache precompute`: run a teacher once over splits into a resumable Zarr v3 cache."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kdcache.cli.config_options import config_file_option, option, overrides, print_config_option, resolve
from kdcache.precompute.precompute_config import PrecomputeConfig as C


def precompute_command(
    ctx: typer.Context,
    teacher: Optional[str] = option(C, "teacher"),
    splits: List[str] = option(C, "splits"),
    out: Optional[str] = option(C, "out"),
    storage_options: List[str] = option(C, "storage_options"),
    resolution: str = option(C, "resolution"),
    batch_size: int = option(C, "batch_size"),
    device: str = option(C, "device"),
    precision: str = option(C, "precision"),
    feature_layers: str = option(C, "feature_layers"),
    feature_grid: Optional[str] = option(C, "feature_grid"),
    feature_budget: Optional[int] = option(C, "feature_budget"),
    flip_tta: bool = option(C, "flip_tta"),
    shard: Optional[str] = option(C, "shard"),
    workers: Optional[int] = option(C, "workers"),
    writer_threads: Optional[int] = option(C, "writer_threads"),
    strict: Optional[bool] = option(C, "strict"),
    shard_size: int = option(C, "shard_size"),
    split_options: List[str] = option(C, "split_options"),
    data_root: Optional[str] = option(C, "data_root"),
    config: Optional[Path] = config_file_option(),
    print_config: bool = print_config_option(),
) -> None:
    """Run a teacher once over splits into a resumable Zarr v3 cache (rerun the same command to resume; name a new
    --split with the same --out to add it)."""
    from kdcache.cli.cache import show_store
    from kdcache.errors import check_writable, writing_to
    from kdcache.precompute import precompute
    from kdcache.store.backend import check_lasting, local_path

    settings = resolve(C, config, overrides(ctx, C), print_config)
    check_lasting(settings.out)
    if local_path(settings.out) is not None:
        check_writable(local_path(settings.out))
    # Shards are written whole and flagged done last: after a full disk the same command continues.
    with writing_to(settings.out, rerun="rerun the same command to continue"):
        url = precompute(settings)
    show_store(url)


def register(app: typer.Typer) -> None:
    app.command("precompute")(precompute_command)

"""`kdcache train`: train one or many students from a teacher cache (never loads the teacher)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional

import typer

from kdcache.cli.config_options import config_file_option, option, overrides, print_config_option, resolve
from kdcache.errors import KdcacheError
from kdcache.train.train_config import DEFAULT_AUX_RATIO
from kdcache.train.train_config import TrainConfig as C
from kdcache.train.train_config import VariantConfig as V

HELP = """Train students from a cache made by `kdcache precompute`.

One variant per --student, or per variant table of a --config TOML sweep (configs/train-sweep.toml); \
every batch is read and augmented once and fed to all of them. \
Under torchrun each process trains on its share of the cache (DDP).
"""


def _sources(labeled: Optional[str], aux: list[str]) -> dict[str, str]:
    """--labeled SPLIT and --aux [NAME=]SPLIT ... -> {"labeled": .., "aux": .., "aux-2": ..}."""
    sources = {"labeled": labeled} if labeled else {}
    for index, spec in enumerate(aux):
        name, sep, split = spec.partition("=")
        if not sep or ":" in name or "[" in name:
            name, split = ("aux" if index == 0 else f"aux-{index + 1}"), spec
        if name in sources:
            raise KdcacheError(f"source name '{name}' is given twice: name aux sources as NAME=SPLIT")
        sources[name] = split
    return sources


def shorthand_overrides(students: list[str], labeled: Optional[str], aux: list[str], aux_ratio: Optional[float],
                        no_augment: bool) -> dict[str, Any]:
    """The options that stand for a table of the TOML: --student (its [[variant]]s), --labeled / --aux
    ([sources]), --aux-ratio ([mix]) and --no-augment ([augment] enabled = false)."""
    given: dict[str, Any] = {}
    if students:
        given["variant"] = [{"student": s} for s in students]
    if labeled or aux:
        given["sources"] = _sources(labeled, aux)
    if aux_ratio is not None:
        given["aux_ratio"] = aux_ratio
    if no_augment:
        given["augment"] = {"enabled": False}
    return given


def train_command(
    ctx: typer.Context,
    student: List[str] = typer.Option([], "--student", "-s", help="Student preset (repeat for several variants)."),
    cache: Optional[str] = option(C, "cache"),
    storage_options: List[str] = option(C, "storage_options"),
    read_cache: Optional[str] = option(C, "read_cache"),
    read_cache_gib: float = option(C, "read_cache_gib"),
    labeled: Optional[str] = typer.Option(None, "--labeled", help="Labeled split of the cache."),
    aux: List[str] = typer.Option([], "--aux", help="Unlabeled split ([NAME=]SPLIT; repeatable)."),
    aux_ratio: Optional[float] = typer.Option(
        None, "--aux-ratio", help=f"Fraction of each batch from aux sources (default {DEFAULT_AUX_RATIO})."),
    mode: Optional[str] = option(V, "mode"),
    loss: Optional[str] = option(V, "loss"),
    val: Optional[str] = option(C, "val"),
    out: Optional[str] = option(C, "out"),
    config: Optional[Path] = config_file_option(),
    epochs: int = option(C, "epochs"),
    steps: Optional[int] = option(C, "steps"),
    batch_size: int = option(C, "batch_size", "-b"),
    lr: float = option(V, "lr"),
    weight_decay: float = option(V, "weight_decay"),
    seed: int = option(C, "seed"),
    ema: Optional[float] = option(V, "ema"),
    warmup: float = option(C, "warmup"),
    clip_grad: float = option(C, "clip_grad"),
    amp: str = option(C, "amp"),
    device: str = option(C, "device"),
    workers: Optional[int] = option(C, "workers"),
    val_max_samples: int = option(C, "val_max_samples"),
    resolution: Optional[str] = option(C, "resolution"),
    feature_layers: List[str] = option(C, "feature_layers"),
    no_augment: bool = typer.Option(False, "--no-augment", help="Turn augmentation off."),
    log_every: int = option(C, "log_every"),
    checkpoint_every: int = option(C, "checkpoint_every"),
    resume: bool = option(C, "resume"),
    overwrite: bool = option(C, "overwrite"),
    sync_bn: bool = option(C, "sync_bn"),
    pretrained: bool = option(V, "pretrained"),
    print_config: bool = print_config_option(),
) -> None:
    from kdcache.errors import writing_to
    from kdcache.train import train

    given = {**overrides(ctx, C, V), **shorthand_overrides(student, labeled, aux, aux_ratio, no_augment)}
    settings = resolve(C, config, given, print_config)
    # A full disk mid-run leaves every checkpoint whole (they are swapped in by rename): --resume continues.
    with writing_to(settings.out, rerun="rerun with --resume to continue from the last checkpoint"):
        results = train(settings)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one table, not one per process
        print_results(results)


def print_results(results) -> None:
    from rich.table import Table

    from kdcache.console import stdout_console

    table = Table(title="kdcache train")
    numeric = ("steps", "best val AbsRel", "final loss", "time (s)")
    for column in ("variant", "student", "space", *numeric, "run dir"):
        table.add_column(column, justify="right" if column in numeric else "left")
    for r in results:
        best = "-" if r.best_val_abs_rel is None else f"{r.best_val_abs_rel:.4f} @ {r.best_step}"
        loss = "-" if r.final_loss is None else f"{r.final_loss:.4f}"
        table.add_row(r.name, r.student, r.output_space, str(r.steps), best, loss, f"{r.compute_time_s:.1f}", r.run_dir)
    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP)(train_command)

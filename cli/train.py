"""`kdcache train`: train one or many students from a teacher cache (never loads the teacher)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from kdcache.errors import KdcacheError
from kdcache.sizes import parse_hw

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


def build_raw_config(config_file: Optional[Path], options: dict[str, Any], students: list[str],
                     labeled: Optional[str], aux: list[str]) -> dict[str, Any]:
    """The TOML (if any) with every option given on the command line taking precedence."""
    from kdcache.train import load_toml

    raw = load_toml(config_file) if config_file else {}
    sources = _sources(labeled, aux)
    if sources:
        raw["sources"] = sources
    if options.get("aux_ratio") is not None:
        raw.pop("mix", None)  # an explicit ratio replaces the TOML's per-source fractions
    raw.update({k: v for k, v in options.items() if v is not None})
    if students:
        raw.pop("variant", None)
        raw["variant"] = [{"student": s} for s in students]
    return raw


def train_command(
    student: list[str] = typer.Option([], "--student", "-s", help="Student preset (repeat for several variants)."),
    cache: Optional[str] = typer.Option(None, "--cache", help="Cache URL (a `kdcache precompute --out`)."),
    labeled: Optional[str] = typer.Option(None, "--labeled", help="Labeled split of the cache."),
    aux: list[str] = typer.Option([], "--aux", help="Unlabeled split ([NAME=]SPLIT; repeatable)."),
    aux_ratio: Optional[float] = typer.Option(None, "--aux-ratio", help="Fraction of each batch from aux sources."),
    mode: Optional[str] = typer.Option(None, "--mode", help="gt-only | kd-labeled | kd-labeled-aux | kd-aux-only."),
    loss: Optional[str] = typer.Option(None, "--loss", help="Loss weights, e.g. silog=1,kd=1."),
    val: Optional[str] = typer.Option(None, "--val", help="Labeled split of the cache for checkpoints/best."),
    out: Optional[str] = typer.Option(None, "--out", help="Run directory (one sub-dir per variant)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config / sweep (configs/train-*.toml)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the labeled (or aux-only) split."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimizer steps (instead of --epochs)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    ema: Optional[float] = typer.Option(None, "--ema", help="EMA decay, e.g. 0.999 (off by default)."),
    warmup: Optional[float] = typer.Option(None, "--warmup", help="Warm-up: fraction of steps, or steps if >= 1."),
    clip_grad: Optional[float] = typer.Option(None, "--clip-grad", help="Max gradient norm (0 = off)."),
    amp: Optional[str] = typer.Option(None, "--amp", help="auto (bf16 on GPU, off on CPU) | bf16 | off."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Data loader workers."),
    val_max_samples: Optional[int] = typer.Option(None, "--val-max-samples"),
    resolution: Optional[str] = typer.Option(None, "--resolution", help="Refuse a cache not at HxW."),
    feature_layer: list[str] = typer.Option([], "--feature-layer", help="Teacher layer to distil (repeat)."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Turn augmentation off."),
    log_every: Optional[int] = typer.Option(None, "--log-every"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every",
                                                   help="Extra checkpoints every N steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out exactly."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run in --out."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="SyncBatchNorm across GPUs under torchrun."),
    pretrained: bool = typer.Option(False, "--pretrained", help="ImageNet encoder weights if available locally (offline: logged, trains from scratch)."),
) -> None:
    from kdcache.errors import writing_to
    from kdcache.train import config_from_dict, train

    options = {
        "cache": cache, "aux_ratio": aux_ratio, "mode": mode, "loss": loss, "val": val, "out": out,
        "epochs": epochs, "steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
        "seed": seed, "ema": ema, "warmup": warmup, "clip_grad": clip_grad,
        "amp": amp, "device": device, "workers": workers, "val_max_samples": val_max_samples,
        "resolution": parse_hw(resolution, "--resolution"), "feature_layers": feature_layer or None,
        "log_every": log_every, "checkpoint_every": checkpoint_every,
        "resume": resume or None, "overwrite": overwrite or None, "sync_bn": sync_bn or None,
        "pretrained": pretrained or None,
    }
    raw = build_raw_config(config, options, student, labeled, aux)
    if no_augment:
        raw.setdefault("augment", {})["enabled"] = False
    config = config_from_dict(raw)
    # A full disk mid-run leaves every checkpoint whole (they are swapped in by rename): --resume continues.
    with writing_to(config.out, rerun="rerun with --resume to continue from the last checkpoint"):
        results = train(config)
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

"""`kdcache cache info STORE` and `kdcache cache verify STORE`: what a cache holds, and is it sound."""

from __future__ import annotations

import json
from typing import List

import typer
from rich.markup import escape
from rich.table import Table

from kdcache.cli.config_options import option
from kdcache.config import parse_storage_options
from kdcache.console import log, stdout_console
from kdcache.precompute.precompute_config import PrecomputeConfig

MAX_LISTED = 20  # problems `cache verify` lists one by one

def _mb(n: float) -> str:
    return f"{n / 2**20:,.2f} MiB"


def manifest_table(manifest: dict) -> Table:
    table = Table(title="manifest", show_header=False)
    teacher = manifest.get("teacher") or {}
    features = manifest.get("features") or {}
    rows = [
        ("kdcache version / format", f"{manifest['kdcache_version']} / {manifest['format']}"),
        ("created", manifest["created"]),
        ("teacher", teacher.get("name", "none")),
        ("teacher identity", json.dumps(teacher.get("identity")) if teacher else "-"),
        ("output space", str(teacher.get("output_space", "-"))),
        ("precision / flip-TTA", f"{teacher.get('precision', '-')} / {teacher.get('flip_tta', '-')}"),
        ("resolution", "x".join(map(str, manifest["resolution"]))),
        ("shard size", str(manifest["shard_size"])),
    ]
    for layer, entry in (features.get("per_layer") or {}).items():
        reduced = f" (PCA of {entry['source_channels']})" if entry["pca"] else ""
        grid = "x".join(map(str, features["grid"]))
        rows.append((f"features {layer}", f"{entry['channels']} ch{reduced} at {grid}"))
    for key, value in rows:
        table.add_row(key, value)
    return table


def splits_table(infos) -> Table:
    table = Table(title="splits")
    for column in ("split", "samples", "labels", "shards", "unreadable", "teacher bad", "stored", "bytes/sample", "ratio"):
        table.add_column(column, justify="left" if column in ("split", "labels") else "right")
    for info in infos:
        done = "complete" if info.complete else "INCOMPLETE"
        if info.damaged_shards:
            done = f"DAMAGED ({info.damaged_shards} shards)"
        table.add_row(
            info.spec, str(info.count), info.space or "-", f"{info.shards_done}/{info.shards_total} {done}",
            str(info.unreadable), str(info.teacher_bad), _mb(info.stored_bytes),
            f"{info.bytes_per_sample:,.0f}", f"{info.compression:.2f}x",
        )
    return table


def fields_table(infos) -> Table:
    table = Table(title="fields (all splits)")
    for column in ("field", "dtype", "sample shape", "stored", "ratio"):
        table.add_column(column, justify="left" if column in ("field", "dtype") else "right")
    totals: dict[str, list] = {}
    for info in infos:
        for field in info.fields:
            entry = totals.setdefault(field.name, [field.dtype, field.shape[1:], 0, 0])
            entry[2] += field.raw_bytes
            entry[3] += field.stored_bytes
    for name, (dtype, shape, raw, stored) in totals.items():
        table.add_row(name, dtype, "x".join(map(str, shape)) or "-", _mb(stored), f"{raw / max(stored, 1):.2f}x")
    return table


def show_store(url: str, storage_options: dict | None = None) -> None:
    from kdcache.store.info import store_info

    store, infos = store_info(url, storage_options)
    stdout_console().print(manifest_table(store.manifest))
    stdout_console().print(splits_table(infos))
    stdout_console().print(fields_table(infos))
    damage = [line for info in infos for line in info.damaged]
    for line in damage[:MAX_LISTED]:
        log(f"[bold red]damaged:[/] {escape(line)}")
    if damage:
        log(f"run `kdcache cache verify {escape(url)}` for every damaged chunk and the command that repairs them")
    elif all(info.complete for info in infos):
        log(f"complete: every shard's files are there with intact indexes; `kdcache cache verify {escape(url)}` "
            "checks every chunk")


def verify_table(report) -> Table:
    table = Table(title=f"verify {report.url}")
    for column in ("split", "shards", "files read", "damaged", "unreadable", "teacher bad", "non-finite", "recomputed",
                   "field", "max abs", "max rel"):
        table.add_column(column, justify="left" if column in ("split", "field") else "right")
    for check in report.splits:
        damaged = len({d.shard for d in check.damage})
        head = [check.spec, f"{check.shards_done}/{check.shards_total}", f"{check.files} ({_mb(check.bytes_read)})",
                f"{damaged} shards" if damaged else "0", str(check.unreadable), str(check.teacher_bad),
                str(sum(check.nonfinite.values())), str(check.recomputed)]
        diffs = list(check.diffs.items()) or [("-", (float("nan"), float("nan")))]
        for row, (name, (abs_diff, rel_diff)) in enumerate(diffs):
            prefix = head if row == 0 else [""] * len(head)
            table.add_row(*prefix, name, f"{abs_diff:.3g}", f"{rel_diff:.3g}")
    return table


def info_command(
    store: str = typer.Argument(..., help="Cache path or fsspec URL (the --out of `kdcache precompute`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON instead of tables."),
    storage_options: List[str] = option(PrecomputeConfig, "storage_options"),
) -> None:
    """Manifest, counts, bytes per sample, compression ratio and completeness of a cache."""
    options = parse_storage_options(storage_options, "--storage-option")
    if as_json:
        from kdcache.store.info import store_manifest

        typer.echo(json.dumps(store_manifest(store, options), indent=2))
        return
    show_store(store, options)


def verify_command(
    store: str = typer.Argument(..., help="Cache path or fsspec URL."),
    teacher: str = typer.Option(None, "--teacher", help="Teacher to recompute with (default: the cache's)."),
    sample: int = typer.Option(4, "--sample", min=0, help="Samples per split to recompute (0: skip)."),
    device: str = typer.Option("auto", "--device", help="Device for the recomputation (auto: the GPU if there is one)."),
    precision: str = typer.Option(None, "--precision", help="fp32|fp16|bf16 (default: the cache's)."),
    tolerance: float = typer.Option(2e-2, "--tolerance", help="Largest accepted relative difference."),
    seed: int = typer.Option(0, "--seed", help="Seed choosing the recomputed samples."),
    storage_options: List[str] = option(PrecomputeConfig, "storage_options"),
) -> None:
    """Every file and checksum of every done shard (read whole), completeness, NaN/inf scan, and a recomputation of
    K samples with the teacher (non-zero exit on failure, naming each damaged shard and the repair command)."""
    from kdcache.precompute import verify_store

    report = verify_store(store, teacher=teacher, samples=sample, device=device, precision=precision,
                          tolerance=tolerance, seed=seed,
                          storage_options=parse_storage_options(storage_options, "--storage-option"))
    stdout_console().print(verify_table(report))
    for note in report.notes:
        log(f"[yellow]note:[/] {escape(note)}")
    for problem in report.problems[:MAX_LISTED]:
        log(f"[bold red]FAIL:[/] {escape(problem)}")
    if len(report.problems) > MAX_LISTED:
        log(f"[bold red]FAIL:[/] ... and {len(report.problems) - MAX_LISTED} more")
    if report.repair:
        log(f"repair: rerun `{escape(report.repair)}`: it redoes only the damaged shards")
    if not report.ok:
        raise typer.Exit(1)
    log(f"[green]OK[/]: {store} is complete, every checksum holds, finite and matches its teacher within {tolerance:g}")


def register(app: typer.Typer) -> None:
    cache = typer.Typer(help="Inspect and verify teacher caches.", no_args_is_help=True)
    cache.command("info")(info_command)
    cache.command("verify")(verify_command)
    app.add_typer(cache, name="cache")

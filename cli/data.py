"""`kdcache data list | show | download`: what data is there, what it looks like, and fetching NYU."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from kdcache.console import log, stdout_console
from kdcache.depth_colors import DEPTH_CMAP


ROOT_HELP = "Data root (default: $KDCACHE_DATA, else ./data)."


def list_command(root: Optional[Path] = typer.Option(None, "--data-root", "--root", help=ROOT_HELP)) -> None:
    """Table of registered splits: size if the data is present (else 'missing'), labels, GT space."""
    from kdcache.data.overview import split_statuses

    table = Table(title="kdcache splits")
    for column in ("split", "images", "expected", "labeled", "space"):
        table.add_column(column)
    rows = split_statuses(root)
    for row in rows:
        count = "pattern" if row.problem == "pattern" else ("missing" if row.count is None else f"{row.count:,}")
        labeled = "?" if row.labeled is None else ("yes" if row.labeled else "no")
        expected = "-" if row.expected is None else f"{row.expected:,}"
        table.add_row(row.name, count, expected, labeled, row.space or "-")
    stdout_console().print(table)
    missing = [row for row in rows if row.count is None and row.problem != "pattern"]
    if missing:
        log(f"{len(missing)} split(s) missing; `kdcache data show SPLIT` says where each one is expected")


def show_command(
    split: str = typer.Argument(..., help="Split name, e.g. nyu-test, synth-train[:8], folder:/photos, "
                                           "video:/clips."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG to write (default: ./<split>-<index>.png)."),
    index: int = typer.Option(0, "--index", help="Which sample to show."),
    root: Optional[Path] = typer.Option(None, "--data-root", "--root", help=ROOT_HELP),
    cmap: str = typer.Option(DEPTH_CMAP, "--cmap", help="Matplotlib colormap for depth (last colour = near)."),
    split_options: List[str] = typer.Option([], "--split-option", help="Reader option KEY=VALUE (repeatable), as "
                                            "precompute takes it, e.g. fps=5 (video:) or depth=COLUMN (dataset:)."),
) -> None:
    """Count, image size and depth range of a split; writes RGB | colormapped depth (invalid black) to a PNG."""
    from kdcache.config import parse_pairs, reader_options
    from kdcache.data.overview import show_split

    options = reader_options(parse_pairs(split_options, "--split-option"))
    view = show_split(split, root, index=index, out=out, cmap=cmap, **options)
    table = Table(title=f"{view.split} [{view.index}] {view.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("samples", f"{view.count:,}")
    table.add_row("image size (HxW)", f"{view.image_size[0]}x{view.image_size[1]}")
    table.add_row("labeled", "yes" if view.labeled else "no")
    if view.labeled:
        table.add_row("GT space", str(view.space))
        table.add_row("valid pixels", f"{100 * view.valid_fraction:.1f}%")
        if view.depth_range:
            r = view.depth_range
            table.add_row("GT range (p2 / p50 / p98)", f"{r['p2']:.4g} / {r['p50']:.4g} / {r['p98']:.4g}")
            table.add_row("GT min / max", f"{r['min']:.4g} / {r['max']:.4g}")
    table.add_row("picture", str(view.out))
    stdout_console().print(table)


def download_command(
    dataset: str = typer.Argument(..., help="Dataset to fetch: nyu."),
    root: Optional[Path] = typer.Option(None, "--data-root", "--root", help=ROOT_HELP),
    labeled_url: Optional[str] = typer.Option(None, "--labeled-url", help="Mirror of nyu_depth_v2_labeled.mat "
                                              "(or $KDCACHE_NYU_LABELED_URL)."),
    splits_url: Optional[str] = typer.Option(None, "--splits-url", help="Mirror of splits.mat "
                                             "(or $KDCACHE_NYU_SPLITS_URL)."),
    force: bool = typer.Option(False, "--force", help="Download again even if valid files are present."),
) -> None:
    """Fetch NYU Depth v2 (labeled .mat + splits.mat) into <root>/nyu/, resuming partial downloads."""
    from kdcache.data.download import download

    options = {"labeled_url": labeled_url, "splits_url": splits_url, "force": force}
    for path in download(dataset, root, **options):
        stdout_console().print(str(path))


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Datasets: list registered splits, inspect a sample, download NYU Depth v2.",
                       no_args_is_help=True)
    data.command("list")(list_command)
    data.command("show")(show_command)
    data.command("download")(download_command)
    app.add_typer(data, name="data")

"""`kdcache students`: the student zoo — presets with encoder, decoder, parameters and GMACs."""

from __future__ import annotations

from typing import List, Optional

import typer

from kdcache.sizes import parse_hw


def students_command(
    name: Optional[List[str]] = typer.Option(
        None, "--student", "-s", help="Only these (repeatable); `ENCODER+DECODER` builds any timm encoder "
                                      "with a registered decoder, e.g. resnet34+nnconv5."),
    resolution: str = typer.Option("240x320", "--resolution", help="Input size HxW for the GMACs column."),
) -> None:
    """List student presets: encoder, decoder, parameters and GMACs (multiply-accumulates) at a resolution."""
    from rich.table import Table

    from kdcache.console import stdout_console
    from kdcache.students import describe_students

    height, width = parse_hw(resolution, "--resolution")
    rows = describe_students(list(name) if name else None, (height, width))
    table = Table(title=f"students (GMACs = multiply-accumulates of one {height}x{width} image; "
                        f"GFLOPs = 2 x GMACs)")
    for column, justify in (("name", "left"), ("encoder (timm)", "left"), ("decoder", "left"),
                            ("params (M)", "right"), (f"GMACs @{height}x{width}", "right")):
        table.add_column(column, justify=justify, no_wrap=True)
    table.add_column("description", overflow="fold")
    for row in rows:
        table.add_row(row["name"], row["encoder"], row["decoder"] + (f" w{row['width']}" if row["width"] else ""),
                      f"{row['params'] / 1e6:.2f}", f"{row['gmacs']:.2f}", row["description"])
    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    app.command("students")(students_command)

"""`kdcache teachers [NAME]`: the teacher registry as a table, or what one loaded teacher exposes."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from kdcache.console import stdout_console



def teachers_command(
    name: Optional[str] = typer.Argument(
        None, help="Load this teacher (e.g. hf:/path/to/folder, ckpt:runs/x) and show its layers and identity."),
    device: str = typer.Option("auto", "--device", help="Device to load NAME on (auto: the GPU if there is one)."),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Override the teacher's input size."),
) -> None:
    """Registered teachers: source, output space, input rule, feature layers, parameters, licence."""
    if name is None:
        _print_registry()
        return
    from kdcache.teachers import create_teacher

    options = {"input_size": input_size} if input_size else {}
    _print_teacher(create_teacher(name, device=device, **options).describe())


def _print_registry() -> None:
    from kdcache.teachers import list_teachers, teacher_info

    table = Table(title="kdcache teachers")
    # Names stay whole on narrow terminals; the descriptive columns wrap instead.
    for column in ("name", "source", "output space", "input rule", "feature layers", "params", "licence"):
        table.add_column(column, overflow="fold", no_wrap=column == "name")
    for name in list_teachers(include_prefixes=True):
        info = teacher_info(name)
        shown = name + info.get("argument", "")  # a prefix entry with what follows it: hf:ID_OR_PATH, emulated:MS
        table.add_row(shown, info["source"], info["output_space"] or "-", info["input_rule"],
                      _layers(info["feature_layers"]), _params(info["params"]), _licence(info["licence"]))
    stdout_console().print(table)


def _print_teacher(facts: dict) -> None:
    table = Table(title=f"teacher {facts['name']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("output space", str(facts["output_space"]))
    table.add_row("params", _params(facts.get("params")))
    table.add_row("licence", _licence(facts.get("licence")))
    for key, value in (facts.get("preprocess") or {}).items():
        table.add_row(f"input {key}", str(value))
    table.add_row("feature layers", _layers(facts["feature_layers"]))
    table.add_row("default features", _layers(facts.get("default_feature_layers", [])))
    for key, value in facts["identity"].items():
        if key not in ("preprocess", "name", "output_space"):
            table.add_row(key, str(value))
    stdout_console().print(table)


def _layers(layers) -> str:
    """`hidden_6, hidden_12, neck_0, neck_1` -> `hidden_{6,12} neck_{0,1}`: readable in a narrow column."""
    if not isinstance(layers, list):
        return str(layers or "-")
    groups: dict[str, list[str]] = {}
    for layer in layers:
        prefix, _, index = layer.rpartition("_")
        groups.setdefault(prefix if index.isdigit() else layer, []).append(index if index.isdigit() else "")
    parts = [key if indices == [""] else f"{key}_{{{','.join(indices)}}}" for key, indices in groups.items()]
    return " ".join(parts) or "-"


def _params(params) -> str:
    return f"{params / 1e6:.1f} M" if params else "-"


def _licence(licence) -> str:
    if not licence:
        return "-"
    return f"{licence} (NC)" if "-nc" in licence.lower() else licence


def register(app: typer.Typer) -> None:
    app.command("teachers")(teachers_command)

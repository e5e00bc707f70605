"""Typer options read from a stage's config dataclass, and the options a user actually gave.

A config field's flag, help text and default live on the field (`kdcache.config.setting`); `option(Config, name)`
turns them into a typer option, so the help shows the dataclass's default and no default is written twice. A
command passes only the options given on the command line (`given`) to `Config.from_toml(path, overrides)`: an
option left out never hides a value of the --config TOML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING
from pathlib import Path
from typing import Any, Optional

import typer

from kdcache.config import Config, flag_of


def option(config: type[Config], name: str, *aliases: str, **kwargs) -> Any:
    """The typer option of `config`'s field `name`: its flag (plus `aliases`), help and default as typed."""
    field = next(f for f in dataclasses.fields(config) if f.name == name)
    flag = flag_of(field)
    default = None if field.default is MISSING else field.default  # factories / required: the help says
    if flag.style in ("repeat", "pairs"):
        default = []
    elif flag.style == "value" and default is not None:
        default = flag.text(default)
    return typer.Option(default, *flag.declarations(), *aliases, help=flag.help, **kwargs)


def config_file_option() -> Any:
    return typer.Option(None, "--config", help="TOML file of settings; options given here override it.")


def print_config_option() -> Any:
    return typer.Option(False, "--print-config",
                        help="Print the resolved configuration as TOML (a --config file) and exit: nothing is read "
                             "or written.")


def given(ctx: typer.Context) -> dict[str, Any]:
    """The command's parameters the user typed (or set through the environment), by parameter name."""
    # Compared by name: typer >= 0.20 ships its own copy of click, whose ParameterSource is not click's.
    left_out = (None, "DEFAULT", "DEFAULT_MAP")
    return {name: value for name, value in ctx.params.items()
            if getattr(ctx.get_parameter_source(name), "name", None) not in left_out}


def overrides(ctx: typer.Context, *configs: type[Config]) -> dict[str, Any]:
    """The given options that are fields of `configs`, parsed into the fields' values (HxW -> (H, W), ...)."""
    flags = {field.name: flag_of(field) for config in configs for field in dataclasses.fields(config)
             if flag_of(field) is not None}
    return {name: flags[name].from_cli(value) for name, value in given(ctx).items() if name in flags}


def resolve(config: type[Config], path: Optional[Path], options: dict[str, Any], show: bool):
    """`config` from the TOML at `path` and the given `options`; with `show` (--print-config), print it as TOML
    and stop the command."""
    resolved = config.from_toml(path, options)
    if show:
        typer.echo(resolved.to_toml(), nl=False)
        raise typer.Exit()
    return resolved


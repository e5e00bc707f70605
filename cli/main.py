"""Entry point: `kdcache [--version] COMMAND ...`."""

from __future__ import annotations

import functools
import sys

import typer
import typer.main

from kdcache import __version__
from kdcache.errors import KdcacheError, describe_os_error

app = typer.Typer(
    name="kdcache",
    help="Distil large monocular-depth teachers into small, fast students: pay for the teacher once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kdcache {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """kdcache: precompute a teacher once, train many students from the cache, evaluate them exactly."""


def _register_commands() -> None:
    # One module per command group, in the order a user meets them.
    from kdcache.cli import data, teachers, precompute, cache, students, train, evaluate, infer, export, live, demo

    for module in (demo, data, teachers, precompute, cache, students, train, evaluate, infer, export, live):
        module.register(app)


_register_commands()


# typer >= 0.20 ships its own copy of click: its UsageError (missing argument, bad value, unknown option or
# command) is the base of typer.BadParameter in every version.
_UsageError = typer.BadParameter.__mro__[1]


@functools.cache
def _command():
    """The click command tree of `app`, built once, written the way kdcache's README and errors write it."""
    command = typer.main.get_command(app)
    _plain_help(command)
    return command


def _plain_help(command) -> None:
    """Flags without a type (`--resume`, not `--resume <bool>`) and arguments as NAME, [NAME] or NAME... in
    usage lines and help (typer >= 0.25 writes `{name}...`), on `command` and every command below it."""
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.param_type_name == "argument":
            name = (param.metavar or param.name).upper().removesuffix("...") + ("..." if param.nargs != 1 else "")
            usage = name if param.required else f"[{name}]"
            param.metavar = name
            param.get_usage_pieces = lambda ctx, usage=usage: [usage]
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def usage_error_line(err) -> str:
    """A usage error as one line: what is wrong, the command's usage and where its help is."""
    message = err.format_message().rstrip(".")
    if err.ctx is None:
        return message
    usage = err.ctx.get_usage().removeprefix("Usage: ").strip()
    return f"{message[:1].lower()}{message[1:]}: usage: {usage} (see `{err.ctx.command_path} --help`)"


def _print_error(line: str) -> None:
    from rich.markup import escape

    from kdcache.console import console

    # Escaped: messages quote user text such as `[splits]` or `synth-train[:200]`, which is not markup.
    console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a `KdcacheError` (or an OSError: full disk, read-only path, ...) or a usage error (a missing
    argument, an unknown option) becomes one red `error:` line on stderr and exit code 2. Commands that write
    outputs name their output and the way to continue themselves (`kdcache.errors.writing_to`); this handler is
    the last resort for every other path."""
    try:
        result = _command().main(args=argv, prog_name="kdcache", standalone_mode=False)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except _UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # `kdcache data`: the help is already printed
            return err.exit_code
        _print_error(usage_error_line(err))
        return 2
    except (KdcacheError, OSError) as err:
        _print_error(describe_os_error(err) if isinstance(err, OSError) else str(err))
        return 2
    except KeyboardInterrupt:
        return 130
    # Without standalone mode, click returns an Exit's code (`--help`, typer.Exit(n)) or the command's result.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry point: `kdcache [--version] COMMAND ...`."""

from __future__ import annotations

import sys

import typer

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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a `KdcacheError` (or an OSError: full disk, read-only path, ...) becomes one red line on
    stderr and exit code 2. Commands that write outputs name their output and the way to continue themselves
    (`kdcache.errors.writing_to`); this handler is the last resort for every other path."""
    try:
        app(args=argv, prog_name="kdcache")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except (KdcacheError, OSError) as err:
        from rich.markup import escape

        from kdcache.console import console

        line = describe_os_error(err) if isinstance(err, OSError) else str(err)
        # Escaped: messages quote user text such as `[splits]` or `synth-train[:200]`, which is not markup.
        console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

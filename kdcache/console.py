"""Shared rich console and progress bars, so every long step looks and behaves the same."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# Progress and logs go to stderr so stdout stays clean for tables and JSON a user may pipe.
console = Console(stderr=True)

# Piped output (a file, a CI log) has no width, and rich would fold tables to 80 columns: print them this wide.
PIPED_WIDTH = 200


def stdout_console() -> Console:
    """The console for tables on stdout: the terminal's width, or `PIPED_WIDTH` columns when piped.

    Built per call, so it writes to whatever `sys.stdout` is at that moment (a test's capture included)."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


class RateColumn(ProgressColumn):
    """Items per second, e.g. `42.0 img/s`."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f} {self.unit}/s", style="cyan")


def progress(unit: str = "img", transient: bool = False, disable: bool | None = None,
             fields: tuple[str, ...] = ()) -> Progress:
    """A progress bar with count, rate (`unit`/s), elapsed time, ETA, and the text of each task field in `fields`
    (set with `bar.update(task, <field>=text)`, e.g. the teacher's busy share).

    Disabled automatically when stderr is not a terminal (CI logs, tests) unless asked otherwise.
    """
    if disable is None:
        disable = not sys.stderr.isatty()
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *(TextColumn(f"[magenta]{{task.fields[{name}]}}") for name in fields),
        console=console,
        transient=transient,
        disable=disable,
    )


def log(message: str) -> None:
    console.print(message, highlight=False)

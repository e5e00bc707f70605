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


# Where no bar can be drawn (output to a file or a pipe), long work still says how it goes: a plain line per task
# this often, with its count, measured rate and ETA (a 20-minute run that prints nothing looks hung).
PLAIN_EVERY_S = 30.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressLines(Progress):
    """rich's `Progress`, which also logs a plain line per task every `every` seconds when `lines` is set (its bar
    is then off), and a last line when a task that had lines finishes. The rate (`rate`) is measured over the last
    30 s of updates, so it and the ETA follow a machine that slows down."""

    def __init__(self, *columns, unit: str, fields: tuple[str, ...] = (), lines: bool = False,
                 every: float = PLAIN_EVERY_S, **options):
        super().__init__(*columns, **options)
        self.unit, self.field_names, self.lines, self.every = unit, fields, lines, every
        self._last_line: dict = {}  # task id -> time of its last line (a task without lines yet: its start)
        self._first_count: dict = {}  # task id -> its count when added (a resumed run starts part-way)
        self._had_lines: set = set()

    def add_task(self, *args, **kwargs):
        task_id = super().add_task(*args, **kwargs)
        self._last_line[task_id] = self.get_time()
        self._first_count[task_id] = self._tasks[task_id].completed
        return task_id

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_line(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._maybe_line(task_id)

    def _maybe_line(self, task_id) -> None:
        if not self.lines:
            return
        task, now = self._tasks[task_id], self.get_time()
        if task.finished and task_id in self._had_lines:
            self._had_lines.discard(task_id)
            self._print(self.line(task, final=True))
        elif not task.finished and now - self._last_line[task_id] >= self.every:
            self._last_line[task_id] = now
            self._had_lines.add(task_id)
            self._print(self.line(task))

    def _print(self, line: str) -> None:
        # One line whatever the width (a log file has none), as written: a description is text, not markup.
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def rate(self, task) -> float | None:
        """Items per second: rich's speed over the last 30 s of updates or, when fewer than two updates fell in
        that window (steps slower than 15 s), the mean since the task was added."""
        speed = task.finished_speed or task.speed
        done = task.completed - self._first_count.get(task.id, 0.0)
        if speed is None and task.elapsed and done > 0:
            speed = done / task.elapsed
        return speed

    def line(self, task, final: bool = False) -> str:
        """`train: 1,200/9,600 img (12 %), 41.8 img/s, elapsed 28s, eta 3m21s` (a finished task: its totals)."""
        unit = self.unit
        count = f"{task.completed:,.0f}" + (f"/{task.total:,.0f}" if task.total else "") + f" {unit}"
        if task.total:
            count += f" ({100 * task.completed / task.total:.0f} %)"
        speed = self.rate(task)
        rate = "" if speed is None else f", {speed:,.1f} {unit}/s"
        left = None if not (speed and task.total) else max(task.total - task.completed, 0) / speed
        timing = f" in {_duration(task.elapsed)}" if final else (
            f", elapsed {_duration(task.elapsed)}, eta {_duration(left)}")
        extra = "".join(f", {task.fields[name]}" for name in self.field_names if task.fields.get(name))
        return f"{task.description}: {count}{rate}{timing}{extra}"


def progress(unit: str = "img", transient: bool = False, disable: bool | None = None,
             fields: tuple[str, ...] = (), get_time=None) -> ProgressLines:
    """A progress bar with count, rate (`unit`/s), elapsed time, ETA, and the text of each task field in `fields`
    (set with `bar.update(task, <field>=text)`, e.g. the teacher's busy share).

    `disable=None` (the default): the bar on a terminal; elsewhere (a file, a pipe, CI logs) plain lines every
    `PLAIN_EVERY_S` seconds instead. `disable=True`: neither; `False`: the bar wherever stderr goes.
    `get_time` is the clock (tests pass a fake one).
    """
    lines = disable is None and not sys.stderr.isatty()
    if disable is None:
        disable = not sys.stderr.isatty()
    return ProgressLines(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *(TextColumn(f"[magenta]{{task.fields[{name}]}}") for name in fields),
        unit=unit,
        fields=fields,
        lines=lines,
        console=console,
        transient=transient,
        disable=disable,
        get_time=get_time,
    )


def log(message: str) -> None:
    console.print(message, highlight=False)

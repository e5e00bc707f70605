"""Long work shows progress wherever its output goes: off a terminal, a plain line every ~30 s with the count,
the measured rate and the ETA (kdcache.console.progress), driven here by a fake clock."""

from __future__ import annotations

import re

from kdcache.console import PLAIN_EVERY_S, progress


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("train:")]  # not the bar's own frames


def test_off_a_terminal_a_line_every_30_s_with_count_rate_and_eta(capsys):
    clock = FakeClock()
    with progress(unit="img", get_time=clock, fields=("busy",)) as bar:  # pytest's stderr is not a terminal
        task = bar.add_task("train", total=1000, busy="")
        for _ in range(12):  # 10 img/s for 12 s: no line yet
            clock.now += 1.0
            bar.advance(task, 10)
        assert lines_of(capsys.readouterr().err) == []
        for _ in range(PLAIN_EVERY_S.__int__() - 12):
            clock.now += 1.0
            bar.update(task, advance=10, busy="teacher busy 80%")
        [line] = lines_of(capsys.readouterr().err)
        assert line == "train: 300/1,000 img (30 %), 10.0 img/s, elapsed 30s, eta 1m10s, teacher busy 80%"
        for _ in range(30):  # the machine slows to 2 img/s: the rate and the ETA follow it
            clock.now += 1.0
            bar.advance(task, 2)
        [line] = lines_of(capsys.readouterr().err)
        assert re.search(r"360/1,000 img \(36 %\), 2\.0 img/s, elapsed 1m00s, eta 5m20s", line), line
        clock.now += 1.0
        bar.advance(task, 640)
        [last] = lines_of(capsys.readouterr().err)
        assert last.startswith("train: 1,000/1,000 img (100 %)") and "in 1m01s" in last


def test_short_work_prints_no_lines_and_a_forced_or_disabled_bar_none(capsys):
    clock = FakeClock()
    for disable in (None, True, False):
        with progress(get_time=clock, disable=disable) as bar:
            task = bar.add_task("train", total=10)
            clock.now += 5.0
            bar.advance(task, 10)  # finished within 30 s: nothing to report
        with progress(get_time=clock, disable=disable) as bar:
            task = bar.add_task("train", total=100)
            clock.now += 40.0
            bar.advance(task, 10)
        lines = lines_of(capsys.readouterr().err)
        assert len(lines) == (1 if disable is None else 0), (disable, lines)


def test_steps_slower_than_the_rate_window_still_give_a_rate_and_an_eta(capsys):
    """One update per 40 s (a training step on a busy CPU): the mean since the start, not `eta ?`."""
    clock = FakeClock()
    with progress(unit="img", get_time=clock) as bar:
        task = bar.add_task("train", total=160, completed=32)  # resumed at 32
        for _ in range(2):
            clock.now += 40.0
            bar.advance(task, 16)
    lines = lines_of(capsys.readouterr().err)
    assert lines[-1] == "train: 64/160 img (40 %), 0.4 img/s, elapsed 1m20s, eta 4m00s"

"""What a setting's value may be: its type (the config field's annotation) and its `Bounds`.

`kdcache.config` checks every field with these whenever a config is made, from a TOML file, command-line flags
or Python alike, so a wrong type or range is one line naming the setting, never a traceback deep in a run.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from dataclasses import dataclass
from typing import Any

from kdcache.errors import KdcacheError


@dataclass(frozen=True)
class Bounds:
    """The range a numeric setting must lie in (None: unbounded on that side); `open_*`: the end is excluded."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def holds(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.open_low else value >= self.low)
        below = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return above and below

    def text(self) -> str:
        if self.high is None:
            return f"{'>' if self.open_low else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.open_high else '<='} {self.high:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


POSITIVE = Bounds(0, open_low=True)
NON_NEGATIVE = Bounds(0)
AT_LEAST_ONE = Bounds(1)
FRACTION = Bounds(0, 1)


_KIND_NAMES = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
               str: ("a string", "strings")}


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` has the type `hint` (a field's annotation) as TOML and Python callers give it: ints for
    floats, numpy scalars for numbers, paths for strings; annotations it does not know (Any, objects) pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        kind = numbers.Integral if hint is int else numbers.Real
        return isinstance(value, kind) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        fixed = origin is tuple and Ellipsis not in args
        if fixed and len(value) != len(args):
            return False
        items = args if fixed else [args[0] if args else Any] * len(value)
        return all(conforms(item, kind) for item, kind in zip(value, items))
    if origin is dict:
        return isinstance(value, dict) and all(conforms(v, args[1] if args else Any) for v in value.values())
    return not isinstance(hint, type) or isinstance(value, hint)


def describe_type(hint: Any, plural: bool = False) -> str:
    """`int | None` -> "an integer", `tuple[int, int]` -> "a list of 2 integers", for one-line errors."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe_type(arg, plural) for arg in args if arg is not type(None)))
    if hint in _KIND_NAMES:
        return _KIND_NAMES[hint][plural]
    if origin in (tuple, list) and args:
        count = f"{len(args)} " if origin is tuple and Ellipsis not in args else ""
        return ("lists of " if plural else "a list of ") + count + describe_type(args[0], plural=True)
    if origin is dict and args:
        return ("tables of " if plural else "a table of ") + describe_type(args[1], plural=True)
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "tables" if plural else "a table"
    if origin is list or hint is list:
        return "lists" if plural else "a list"
    return "values" if plural else "a value"


def check_value(label: str, name: str, value: Any, hint: Any, bounds: Bounds | None = None,
                flag=None) -> None:
    """One line naming the setting `name` of the `label` stage, its `flag` (`kdcache.config.Flag`) and what it
    must be, when `value` does not have the type `hint`, is not a finite number or lies outside `bounds`."""
    problem = None
    if not conforms(value, hint):
        problem = f"must be {describe_type(hint)}"
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not math.isfinite(value):
            problem = "must be a finite number" + (f" {bounds.text()}" if bounds else "")
        elif bounds is not None and not bounds.holds(value):
            problem = f"must be {bounds.text()}"
    if problem:
        fix = f"{flag.name} or `{name}` in the TOML" if flag else f"`{name}` in the TOML"
        raise KdcacheError(f"{label} setting {name} = {value!r} {problem}: fix {fix}")

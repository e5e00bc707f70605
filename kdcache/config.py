"""Stage configurations: one dataclass per stage, each default stated once, one merge, one TOML writer.

`PrecomputeConfig`, `TrainConfig` and `EvalConfig` derive from `Config`. A setting's default, its command-line
flag and its help text live on its field (`setting(...)`), so the CLI's options, `--print-config` and the
commands the demo prints are all read from the dataclass, never written a second time:
- `Config.from_toml(path, overrides)` is the only merge: the TOML file (if any), then the options a user gave,
  then the dataclass defaults.
- `Config.from_dict(raw)` refuses unknown keys in one line that names the allowed ones.
- `config.to_toml()` writes the resolved configuration; `from_toml` reads it back to an equal config.
- `config.argv()` / `config.command()` give the equivalent `kdcache ...` command line.

This module imports nothing heavy (no torch): the CLI reads the dataclasses when it starts.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import tomllib
import typing
from dataclasses import MISSING, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, ClassVar

from kdcache.errors import KdcacheError
from kdcache.setting_checks import Bounds, check_value
from kdcache.sizes import parse_hw


@dataclass(frozen=True)
class Flag:
    """How one field is written on the command line.

    `style`: `value` (--flag VALUE), `flag` (a bool: --flag when true), `switch` (a bool or None: --flag /
    --no-flag), `repeat` (a list: --flag ITEM per item) or `pairs` (a dict: --flag KEY=VALUE per item).
    `parse(cli_value, flag_name)` turns what typer hands over into the field's value (default: as is);
    `text(value)` turns the value (one item of it for repeat / pairs) back into the flag's text."""

    name: str
    help: str = ""
    style: str = "value"
    parse: Callable[[Any, str], Any] | None = None
    text: Callable[[Any], str] = str

    def declarations(self) -> list[str]:
        return [f"{self.name}/--no-{self.name[2:]}"] if self.style == "switch" else [self.name]

    def from_cli(self, value: Any) -> Any:
        return value if self.parse is None else self.parse(value, self.name)

    def argv(self, value: Any) -> list[str]:
        if self.style == "flag":
            return [self.name] if value else []
        if self.style == "switch":
            return [self.name if value else f"--no-{self.name[2:]}"]
        if self.style == "repeat":
            return [arg for item in value for arg in (self.name, self.text(item))]
        if self.style == "pairs":
            return [arg for key, item in value.items() for arg in (self.name, f"{key}={self.text(item)}")]
        return [self.name, self.text(value)]


def setting(default: Any = MISSING, *, factory: Callable[[], Any] | Any = MISSING, flag: str | None = None,
            help: str = "", style: str = "value", parse=None, text: Callable[[Any], str] = str,
            bounds: Bounds | None = None) -> Any:
    """A config field with its one default and, when it has one, its command-line flag; a numeric one may have
    `bounds` (checked, with the field's type, whenever a config is made)."""
    metadata = {"flag": Flag(flag, help, style, parse, text)} if flag else {}
    if bounds is not None:
        metadata["bounds"] = bounds
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata)


def flag_of(field: dataclasses.Field) -> Flag | None:
    return field.metadata.get("flag")


@cache
def _type_hints(config: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(config)
    except (NameError, TypeError):  # an annotation naming what only type checkers import: left unchecked
        return {}


def check_field(config: Config, field: dataclasses.Field) -> None:
    """One line naming the setting, its flag and what it must be, when its value has the wrong type, is not a
    finite number or lies outside the field's bounds."""
    check_value(config.LABEL, field.name, getattr(config, field.name), _type_hints(type(config)).get(field.name, Any),
                field.metadata.get("bounds"), flag_of(field))


def default_of(field: dataclasses.Field) -> Any:
    """The field's default (a fresh one for factories); MISSING for a required field."""
    if field.default_factory is not MISSING:
        return field.default_factory()
    return field.default


class Config:
    """Base of the stage configs (dataclasses): the merge, the checks, TOML and the equivalent command."""

    LABEL: ClassVar[str] = "config"  # names the stage in messages: "unknown precompute option(s) ..."
    COMMAND: ClassVar[tuple[str, ...]] = ()  # ("kdcache", "precompute"): where argv() starts

    def __post_init__(self) -> None:
        # TOML has arrays only: a list read for a tuple-typed field (a size, a shard) becomes a tuple, and a tuple
        # given for a list-typed field a list; `lr = 1` is a float; so a config read back from its TOML equals the
        # original.
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), str(field.type)
            if isinstance(value, list) and kind.startswith("tuple"):
                setattr(self, field.name, tuple(value))
            elif isinstance(value, tuple) and kind.startswith("list"):
                setattr(self, field.name, list(value))
            elif type(value) is int and kind.startswith("float"):
                setattr(self, field.name, float(value))
            check_field(self, field)

    # -- reading -------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path | None, overrides: dict[str, Any] | None = None):
        """The TOML file at `path` (None: no file), then `overrides` (the options a user gave), then defaults."""
        raw = load_toml(path) if path else {}
        return cls.from_dict(cls.merge(raw, overrides or {}))

    @classmethod
    def merge(cls, base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        """`overrides` replace `base`'s keys; a table holding a nested config (e.g. [augment]) merges key by key,
        since each of its keys is a setting of its own."""
        merged = dict(base)
        nested = cls.nested_configs()
        for key, value in overrides.items():
            if key in nested and isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return merged

    @classmethod
    def from_dict(cls, raw: dict[str, Any]):
        """A validated config from a TOML-shaped dict."""
        raw = dict(raw)
        cls.check_keys(raw, cls.keys())
        cls.check_required(raw)
        for key, nested in cls.nested_configs().items():
            if isinstance(raw.get(key), dict):
                raw[key] = nested.from_dict(raw[key])
        config = cls(**raw)
        config.validate()
        return config

    def validate(self) -> None:
        """Checks that need no data or files; subclasses add theirs."""

    @classmethod
    def keys(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def nested_configs(cls) -> dict[str, type[Config]]:
        """Fields whose value is a config of its own (a TOML table of settings)."""
        return {field.name: field.default_factory for field in dataclasses.fields(cls)
                if isinstance(field.default_factory, type) and issubclass(field.default_factory, Config)}

    @classmethod
    def check_keys(cls, raw: dict[str, Any], known) -> None:
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise KdcacheError(f"unknown {cls.LABEL} option(s) {unknown}: allowed are {sorted(known)}")

    @classmethod
    def check_required(cls, raw: dict[str, Any]) -> None:
        for field in dataclasses.fields(cls):
            if default_of(field) is MISSING and raw.get(field.name) in (None, "", [], ()):
                flag = flag_of(field)
                where = f"pass {flag.name} or set" if flag else "set"
                raise KdcacheError(f"{cls.LABEL} config has no `{field.name}`: {where} `{field.name}` in the TOML")

    # -- writing -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """TOML-shaped: what `from_dict` reads back to an equal config (None values, TOML's missing, left out)."""
        return {name: plain(value) for name, value in self.items() if value is not None}

    def items(self) -> list[tuple[str, Any]]:
        return [(field.name, getattr(self, field.name)) for field in dataclasses.fields(self)]

    def to_toml(self) -> str:
        return toml_text(self.to_dict())

    def argv(self) -> list[str]:
        """The equivalent command line: the stage's command and a flag for every setting off its default."""
        args = list(self.COMMAND)
        for field in dataclasses.fields(self):
            value, default = getattr(self, field.name), default_of(field)
            if default is not MISSING and value == default:
                continue
            flag = flag_of(field)
            if flag is None:
                raise KdcacheError(f"{self.LABEL} setting `{field.name}` = {value!r} has no command-line flag: "
                                   "write the config with to_toml() and pass it as --config")
            args += flag.argv(value)
        return args

    def command(self) -> str:
        return shlex.join(self.argv())

    @classmethod
    def file_command(cls, path: str | Path) -> str:
        """The command that runs the config written (`to_toml`) at `path`: for settings no flag holds, such as
        training's [[variant]] tables."""
        return shlex.join([*cls.COMMAND, "--config", str(path)])


def plain(value: Any) -> Any:
    """A value as TOML holds it: configs as tables, tuples as arrays, objects (a Teacher, a Predictor) by name."""
    if isinstance(value, Config):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return getattr(value, "name", str(value))


def load_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise KdcacheError(f"config file {path} does not exist: pass a TOML file such as configs/train-sweep.toml")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise KdcacheError(f"{path} is not valid TOML ({err}): fix the file") from None


# -- the one TOML writer -----------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def toml_text(data: dict[str, Any]) -> str:
    """`data` as a TOML document: top-level keys, then `[tables]`, then `[[arrays of tables]]` (TOML wants the
    top-level keys before any table)."""
    lines = [f"{key} = {_toml_value(v)}" for key, v in data.items()
             if not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"] + [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()]
    for key, value in data.items():
        if _is_table_array(value):
            for table in value:
                lines += ["", f"[[{key}]]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# -- parsers shared by the stages' flags -----------------------------------------------------------------
def name_text(value: Any) -> str:
    """A name on the command line, or an object given in Python (a Teacher, a Split, a Predictor) by its name."""
    return value if isinstance(value, str) else value.name


def format_hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def parse_option_value(text: str, option: str) -> Any:
    """A reader option's value: HxW -> (H, W), then int, then float, else the text."""
    if re.fullmatch(r"\d+x\d+", text):
        return parse_hw(text, option)
    return number_or_text(text)


def number_or_text(text: str) -> Any:
    """int, then float, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(items: list[str], option: str, value=None, example: str = "size=96x128 or gt=filled") -> dict[str, Any]:
    """`["size=96x128", "gt=filled"]` -> {"size": (96, 128), "gt": "filled"}; `value(text, option)` reads each value
    (default: `parse_option_value`)."""
    value = value or parse_option_value
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise KdcacheError(f"bad {option} '{item}': use KEY=VALUE, e.g. {example}")
        options[key.strip()] = value(text.strip(), f"{option} {key.strip()}")
    return options


def storage_option_value(text: str, option: str) -> Any:
    """An fsspec storage option's value: `true` / `false`, then int, then float, else the text (sizes stay text)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return number_or_text(text)


def parse_storage_options(items: list[str], option: str) -> dict[str, Any]:
    """`["endpoint_url=http://host:9000", "anon=true"]` -> {"endpoint_url": "http://host:9000", "anon": True}."""
    return parse_pairs(items, option, storage_option_value, "endpoint_url=http://127.0.0.1:9000 or anon=true")


def format_storage_value(value: Any) -> str:
    """The inverse of `parse_storage_options` for one value."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


STORAGE_OPTION_HELP = ("fsspec option of the store's filesystem, KEY=VALUE (repeatable), e.g. "
                       "endpoint_url=http://127.0.0.1:9000 for s3fs; the standard variables (AWS_ENDPOINT_URL, "
                       "AWS_ACCESS_KEY_ID, ...) are read as well.")


def storage_options_setting() -> Any:
    """The `--storage-option` field of every stage config that takes a store URL."""
    return setting(factory=dict, flag="--storage-option", style="pairs", parse=parse_storage_options,
                   text=format_storage_value, help=STORAGE_OPTION_HELP)


def format_option_value(value: Any) -> str:
    """The inverse of `parse_option_value` (sizes as HxW)."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return format_hw(value)
    return str(value)


def reader_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Split reader options as the readers take them (a size read from TOML as an array becomes a tuple)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()}

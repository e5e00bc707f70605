"""A small registry in the spirit of timm's `register_model` / `create_model`.

Every pluggable concept (splits, teachers, students, losses, protocols) is one `Registry`; adding an
entry is one decorated function in one place, and tests parametrize over `registry.names()`.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, TypeVar

from kdcache.errors import KdcacheError

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """Name -> factory map with helpful errors and optional `prefix:` entries (e.g. `folder:PATH`)."""

    def __init__(self, kind: str, list_command: str | None = None):
        self.kind = kind
        self.list_command = list_command
        self._factories: dict[str, F] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._prefixes: dict[str, F] = {}

    def register(self, name: str | None = None, **info: Any) -> Callable[[F], F]:
        """Decorator: register a factory under `name` (default: the function name, `_` -> `-`).

        A name ending in ':' registers a prefix entry: `folder:` matches `folder:/any/path`, and
        the factory receives the text after the colon as its first argument.
        """

        def decorate(factory: F) -> F:
            key = name or factory.__name__.replace("_", "-")
            table = self._prefixes if key.endswith(":") else self._factories
            if key in table:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            table[key] = factory
            self._info[key] = dict(info)
            return factory

        return decorate

    def names(self, include_prefixes: bool = False) -> list[str]:
        """Registered names in registration order (prefix entries only when asked)."""
        names = list(self._factories)
        return names + list(self._prefixes) if include_prefixes else names

    def info(self, name: str) -> dict[str, Any]:
        """The keyword metadata given at registration (licence, description, ...)."""
        return self._info[self.resolve(name)[0]]

    def __contains__(self, name: str) -> bool:
        try:
            self.resolve(name)
        except KdcacheError:
            return False
        return True

    def resolve(self, name: str) -> tuple[str, F, tuple[Any, ...]]:
        """(registered key, factory, leading args) for `name`, or a one-line error with suggestions."""
        if name in self._factories:
            return name, self._factories[name], ()
        for prefix, factory in self._prefixes.items():
            if name.startswith(prefix):
                return prefix, factory, (name[len(prefix):],)
        raise KdcacheError(self._unknown_message(name))

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        _, factory, lead = self.resolve(name)
        return factory(*lead, *args, **kwargs)

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(include_prefixes=True), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        where = f" (`{self.list_command}` lists them)" if self.list_command else ""
        known = ", ".join(self.names(include_prefixes=True))
        return f"unknown {self.kind} '{name}'.{hint} Known: {known}{where}."

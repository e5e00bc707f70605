"""The package reads one way: no two sub-packages import each other, however lazily (inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "kdcache"


def _unit(module: str) -> str:
    """kdcache.evaluate.predictors -> kdcache.evaluate; a top-level module is its own unit."""
    return ".".join(module.split(".")[:2])


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{unit: units it imports}, from every import statement of every module."""
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        source = _unit(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            targets = {_unit(n) for n in names if n.startswith("kdcache.")} - {source}
            graph.setdefault(source, set()).update(targets)
    return graph


def circles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of units that reach each other."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reachable = {unit: reach(unit) for unit in graph}
    return sorted((a, b) for a in graph for b in reachable[a] if a < b and a in reachable.get(b, ()))


def test_no_import_circle_between_sub_packages():
    assert circles(import_graph()) == []


def test_a_circle_is_seen():
    assert circles({"kdcache.evaluate": {"kdcache.export"}, "kdcache.export": {"kdcache.evaluate"}}) == [
        ("kdcache.evaluate", "kdcache.export")]

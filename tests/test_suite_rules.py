"""Rules the test suite keeps so that it can fail: a broken import of kdcache or of a dependency is a failure.

`pytest.importorskip` turns an ImportError into a skip, so it may only name genuinely optional third-party
packages, never kdcache itself nor anything `pyproject.toml` installs with it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

TESTS = Path(__file__).parent


def _required_modules() -> set[str]:
    project = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0] for requirement in project["dependencies"]}
    return {"kdcache"} | {name.lower().replace("-", "_") for name in names}


def _importorskips(path: Path) -> list[str]:
    skipped = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip" and node.args
                and isinstance(node.args[0], ast.Constant)):
            skipped.append(str(node.args[0].value))
    return skipped


def test_no_test_skips_on_a_broken_import_of_kdcache_or_its_dependencies():
    required = _required_modules()
    offending = [f"{path.name}: importorskip({name!r})" for path in sorted(TESTS.rglob("*.py"))
                 for name in _importorskips(path) if name.split(".")[0].lower() in required]
    assert not offending, "import these directly (a broken install must fail): " + ", ".join(offending)


def test_the_rule_sees_an_importorskip(tmp_path):
    sample = tmp_path / "test_x.py"
    sample.write_text('import pytest\nort = pytest.importorskip("onnxruntime")\n')
    assert _importorskips(sample) == ["onnxruntime"] and "onnxruntime" in _required_modules()

"""Shared test setup: small, deterministic, and polite to a 2-core CI machine."""

from __future__ import annotations

import os

# Before torch is imported anywhere: one thread per test process keeps the suite predictable on 2 cores,
# and no test may ever reach a hub.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """An empty data root, also exported as $KDCACHE_DATA."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("KDCACHE_DATA", str(root))
    return root


@pytest.fixture
def run_cli(capsys):
    """Run `kdcache ARGS...` in-process; returns (exit_code, stdout, stderr)."""
    from kdcache.cli.main import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run

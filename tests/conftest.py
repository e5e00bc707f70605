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


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on 127.0.0.1 for the session, with AWS_ENDPOINT_URL and the credentials exported (what
    s3fs and the tests' subprocesses read); skipped where moto is not installed (`pip install -e ".[dev]"`)."""
    pytest.importorskip("moto.server", reason="the object-store tests need moto[server] (the dev extra)")
    pytest.importorskip("s3fs", reason="the object-store tests need s3fs (the s3 extra)")
    from helpers.s3_server import S3_ENV, start_server

    server, endpoint = start_server()
    saved = {key: os.environ.get(key) for key in (*S3_ENV, "AWS_ENDPOINT_URL")}
    os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": endpoint})
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh, empty bucket on the test S3 server; the storage options and read cache a test gives the process
    (`kdcache.store.backend.use_remote`) end with it."""
    from helpers.s3_server import new_bucket

    monkeypatch.setattr("kdcache.store.backend._REMOTES", {})
    return new_bucket()

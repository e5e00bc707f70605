"""Offline fails fast: with a hub that never answers, the commands that need it say so within seconds.

Without the probe (`kdcache.hub`), the HF client retries the silent endpoint with a growing back-off for 30 to
50 s before the same message. The bounds here guard that hang, with wide margins for a loaded CI machine.
"""

from __future__ import annotations

import time

import pytest

import helpers.precompute_fakes  # noqa: F401  (registers the kdtest-* splits)
from helpers.offline_hub import unreachable_hub  # noqa: F401  (a fixture)
from helpers.tiny_models import make_tiny_dpt

BOUND_S = 20  # the probe waits 3 s


@pytest.fixture(autouse=True)
def imported():
    """The bound is on waiting for the network, not on importing the teachers' classes (slow on a busy CPU)."""
    import transformers

    transformers.DPTForDepthEstimation, transformers.DepthAnythingForDepthEstimation  # noqa: B018


def timed(run_cli, *args):
    started = time.monotonic()
    code, out, err = run_cli(*args)
    return code, err, time.monotonic() - started


def test_teachers_with_an_unreachable_hub_gives_the_message_within_seconds(unreachable_hub, run_cli):
    code, err, seconds = timed(run_cli, "teachers", "dpt-large")
    assert code == 2 and seconds < BOUND_S, (seconds, err)
    assert "'Intel/dpt-large' are not in the HF cache" in err and "did not answer" in err and "hf:/path" in err
    assert "Retrying" not in err


def test_precompute_with_an_unreachable_hub_gives_the_message_within_seconds(unreachable_hub, run_cli, tmp_path):
    code, err, seconds = timed(run_cli, "precompute", "--teacher", "dpt-large", "--split", "kdtest-labeled[:2]",
                               "--out", tmp_path / "c.zarr", "--workers", "0")
    assert code == 2 and seconds < BOUND_S, (seconds, err)
    assert "not in the HF cache" in err and not (tmp_path / "c.zarr").exists()


def test_a_cached_teacher_loads_from_the_cache_alone_when_the_hub_is_unreachable(unreachable_hub):
    from kdcache.teachers import create_teacher

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = unreachable_hub / "models--Intel--dpt-large"
    make_tiny_dpt(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    started = time.monotonic()
    teacher = create_teacher("dpt-large")
    assert time.monotonic() - started < BOUND_S
    assert teacher.identity["revision"] == commit

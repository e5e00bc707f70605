"""`PrecomputeConfig(split_options=...)` / `--split-option`: reader options reach every split and the manifest."""

from __future__ import annotations

import numpy as np
import pytest

from kdcache.config import parse_pairs
from kdcache.data import open_split
from kdcache.errors import KdcacheError
from kdcache.store import open_store


def test_parse_split_options():
    assert parse_pairs(["size=24x32", "gt=filled", "n=3", "f=0.5"], "--split-option") == {
        "size": (24, 32), "gt": "filled", "n": 3, "f": 0.5}
    with pytest.raises(KdcacheError, match="bad --split-option 'size': use KEY=VALUE"):
        parse_pairs(["size"], "--split-option")


def test_synth_rendered_at_the_cache_resolution_is_stored_unresized(tmp_path, run_cli):
    out = tmp_path / "gt.zarr"
    args = ["precompute", "--teacher", "none", "--split", "synth-train[:3]", "--out", out,
            "--resolution", "24x32", "--split-option", "size=24x32", "--workers", "0"]
    code, _, err = run_cli(*args)
    assert code == 0, err
    stored = open_store(str(out)).split("synth-train[:3]").read(0, 3, ["image", "gt"])
    rendered = open_split("synth-train[:3]", size=(24, 32))
    for i in range(3):
        np.testing.assert_array_equal(stored["image"][i], rendered[i].image)
        np.testing.assert_array_equal(stored["gt"][i], rendered[i].depth)
    assert open_store(str(out)).manifest["split_options"] == {"size": [24, 32]}

    # The same store asked for with other reader options is refused, not silently mixed.
    code, _, err = run_cli(*args[:-4], "--split-option", "size=48x64", "--workers", "0")
    assert code == 2 and "split options" in err

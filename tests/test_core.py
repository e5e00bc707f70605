"""The shared core: registry behaviour, split-name parsing and slicing, the CLI entry point."""

from __future__ import annotations

import pytest

from kdcache import __version__
from kdcache.data import Sample, open_split, parse_split
from kdcache.data.splits import SlicedSplit, data_root
from kdcache.errors import KdcacheError
from kdcache.registry import Registry


def make_registry() -> Registry:
    reg = Registry("widget", list_command="kdcache widgets")

    @reg.register("alpha", licence="MIT")
    def alpha(x=1):
        return ("alpha", x)

    @reg.register("path:")
    def by_path(path, x=1):
        return ("path", path, x)

    return reg


def test_registry_creates_by_name_and_prefix():
    reg = make_registry()
    assert reg.create("alpha", x=3) == ("alpha", 3)
    assert reg.create("path:/a/b:c") == ("path", "/a/b:c", 1)
    assert reg.names() == ["alpha"]
    assert reg.names(include_prefixes=True) == ["alpha", "path:"]
    assert reg.info("alpha") == {"licence": "MIT"}
    assert "alpha" in reg and "path:x" in reg and "beta" not in reg


def test_registry_unknown_name_suggests_and_names_the_list_command():
    with pytest.raises(KdcacheError) as err:
        make_registry().create("alpah")
    message = str(err.value)
    assert "unknown widget 'alpah'" in message and "'alpha'" in message and "kdcache widgets" in message
    assert "\n" not in message


def test_registry_refuses_duplicates():
    reg = make_registry()
    with pytest.raises(ValueError):
        reg.register("alpha")(lambda: None)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("nyu-test", ("nyu-test", None)),
        ("synth-train[:200]", ("synth-train", slice(None, 200))),
        ("nyu-test[10:20]", ("nyu-test", slice(10, 20))),
        ("synth-aux[-5:]", ("synth-aux", slice(-5, None))),
        ("folder:/data/x[1]", ("folder:/data/x[1]", None)),
    ],
)
def test_parse_split(spec, expected):
    assert parse_split(spec) == expected


def test_parse_split_rejects_a_malformed_slice():
    with pytest.raises(KdcacheError, match="NAME\\[start:stop\\]"):
        parse_split("nyu-test[1:x]")


class _Numbers:
    name, labeled, space = "numbers", False, None

    def __len__(self):
        return 10

    def __getitem__(self, i):
        import numpy as np

        if not 0 <= i < 10:
            raise IndexError(i)
        return Sample(id=str(i), image=np.zeros((2, 2, 3), np.uint8))


def test_sliced_split_is_a_contiguous_view():
    view = SlicedSplit(_Numbers(), 3, 7, "numbers[3:7]")
    assert len(view) == 4
    assert [view[i].id for i in range(4)] == ["3", "4", "5", "6"]
    assert view[-1].id == "6"
    with pytest.raises(IndexError):
        view[4]


def test_open_split_unknown_name_is_one_clear_line():
    with pytest.raises(KdcacheError, match="unknown split 'nyu-tset'.*nyu-test"):
        open_split("nyu-tset")


def test_data_root_prefers_argument_then_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KDCACHE_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("KDCACHE_DATA")
    assert str(data_root()) == "data"


def test_cli_version_and_help(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"kdcache {__version__}"
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("demo", "data", "precompute", "cache", "train", "eval", "infer", "export", "students"):
        assert command in out


def test_cli_turns_a_user_error_into_one_line_and_exit_2(run_cli):
    code, _, err = run_cli("data", "show", "no-such-split")
    assert code == 2
    assert "unknown split 'no-such-split'" in err


def test_a_sliced_split_pickles_for_spawned_workers():
    import pickle

    view = pickle.loads(pickle.dumps(open_split("synth-train[2:4]", size=(24, 32))))
    assert len(view) == 2 and view[0].image.shape == (24, 32, 3)


@pytest.mark.parametrize("text, expected", [("240x320", (240, 320)), ("96X128", (96, 128)), (None, None)])
def test_parse_hw(text, expected):
    from kdcache.sizes import parse_hw

    assert parse_hw(text, "--resolution") == expected


@pytest.mark.parametrize("text, reason", [("big", "use HxW"), ("240x", "use HxW"), ("0x320", "positive"),
                                          ("-1x4", "positive")])
def test_parse_hw_names_the_option_in_one_line(text, reason):
    from kdcache.sizes import parse_hw

    with pytest.raises(KdcacheError, match=f"^bad --feature-grid '{text}': .*{reason}") as caught:
        parse_hw(text, "--feature-grid")
    assert "\n" not in str(caught.value)

"""What the command line says: one `error:` line (exit 2) for every mistake, help that names what a user types.

Usage errors (a missing argument, an unknown option or command, a value of the wrong type) and settings of the
wrong type or range, from flags or a --config TOML, end in one line starting `error: `, never a Typer box, click's
`Error:` or a traceback.
"""

from __future__ import annotations

import pytest

from kdcache.teachers import list_teachers

TRAIN = ("train", "--cache", "missing.zarr", "--out", "run", "--labeled", "synth-train", "--student", "mobilevit")


def one_error_line(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv, expected", [
    (("infer",), "error: missing argument 'INPUTS...': usage: kdcache infer [OPTIONS] INPUTS..."),
    (("data", "download"), "error: missing argument 'DATASET': usage: kdcache data download [OPTIONS] DATASET"),
    (("nosuch",), "error: no such command 'nosuch'"),
    (("teachers", "--bogus"), "error: no such option: --bogus: usage: kdcache teachers [OPTIONS] [NAME]"),
    (("train", "--steps", "many"), "error: invalid value for '--steps'"),
])
def test_usage_errors_are_one_error_line_with_the_usage(argv, expected, run_cli):
    code, out, err = run_cli(*argv)
    line = one_error_line(code, err)
    assert line.startswith(expected) and "(see `kdcache" in line and line.endswith("--help`)"), line
    assert out == "" and "Error" not in err and "╭" not in err


@pytest.mark.parametrize("argv, toml, expected", [
    (("--lr", "nan"), None, "variant setting lr = nan must be a finite number > 0: fix --lr or `lr` in the TOML"),
    (("--lr", "-1"), None, "variant setting lr = -1.0 must be > 0: fix --lr"),
    (("--ema", "1.5"), None, "variant setting ema = 1.5 must be in [0, 1)"),
    (("--read-cache-gib", "-5"), None, "train setting read_cache_gib = -5.0 must be > 0: fix --read-cache-gib"),
    ((), 'batch_size = "eight"\n', "train setting batch_size = 'eight' must be an integer: fix --batch-size"),
    ((), "steps = 2.5\n", "train setting steps = 2.5 must be an integer"),
    ((), 'resolution = [32, "x"]\n', "train setting resolution = (32, 'x') must be a list of 2 integers"),
    ((), '[mix]\nlabeled = "half"\n', "train setting mix = {'labeled': 'half'} must be a table of numbers"),
    ((), "[augment]\nflip = 1\n", "augment setting flip = 1 must be true or false: fix `flip` in the TOML"),
    ((), 'loss = {silog = "a lot"}\n', "variant setting loss = {'silog': 'a lot'} must be a string or a table of"),
])
def test_settings_of_the_wrong_type_or_range_are_one_line(argv, toml, expected, run_cli, tmp_path):
    config = []
    if toml is not None:
        (tmp_path / "run.toml").write_text(toml)
        config = ["--config", tmp_path / "run.toml"]
    line = one_error_line(*run_cli(*TRAIN, *argv, *config)[::2])
    assert line.startswith(f"error: {expected}"), line
    assert not (tmp_path / "run").exists()


def test_precompute_and_eval_settings_are_checked_too(run_cli, tmp_path):
    (tmp_path / "p.toml").write_text('teacher = "none"\nsplits = ["synth-test[:2]"]\nbatch_size = [8]\n')
    line = one_error_line(*run_cli("precompute", "--config", tmp_path / "p.toml", "--out", tmp_path / "s.zarr")[::2])
    assert "precompute setting batch_size = [8] must be an integer" in line
    line = one_error_line(*run_cli("eval", "--model", "x", "--split", "synth-test[:1]", "--max-depth", "inf")[::2])
    assert "eval setting max_depth = inf must be a finite number" in line


@pytest.mark.parametrize("command", ["infer", "train", "precompute", "eval", "teachers", "data download", ""])
def test_help_names_what_a_user_types(command, run_cli):
    """Flags show no `<bool>`, arguments are written NAME / NAME... (not `{name}...`), and no help text names an
    internal function."""
    code, out, _ = run_cli(*command.split(), "--help")
    assert code == 0 and "Usage: kdcache" in out
    assert "<bool>" not in out and "{" not in out.split("Usage:")[1].splitlines()[0], out
    assert "kdcache.devices" not in "".join(out.split())  # joined: the help may wrap a long name
    if command == "infer":
        assert "Usage: kdcache infer [OPTIONS] INPUTS..." in out


def test_teachers_lists_the_names_a_user_types(run_cli):
    code, out, _ = run_cli("teachers")
    assert code == 0
    for name in ("emulated:MS", "hf:ID_OR_PATH", "ckpt:PATH", *list_teachers()):
        assert name in out, name
    assert "MS_PER_IMAGE" not in out and "emulated:PATH" not in out

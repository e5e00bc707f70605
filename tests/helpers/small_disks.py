"""Run one kdcache command against real, tiny filesystems: a read-only tmpfs, then a tmpfs that fills up.

Started by `test_unwritable_out.py` inside a private user + mount namespace (`unshare -rm`), so mounting needs no
root and every mount vanishes with the process. It runs the command in-process three times and copies what each
run left on the tmpfs to plain folders beside it, for the test to compare with a run on a normal disk:

1. `--out` on a read-only tmpfs;
2. `--out` on a tmpfs of `size` bytes, too small for the whole output (the disk fills up mid-run);
3. the same tmpfs grown to 256 MiB, and the command rerun (plus `rerun_extra`, e.g. `--resume`).

usage: python tests/helpers/small_disks.py SPEC.json   (SPEC: argv with "{out}", size, rerun_extra, work)
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)


def kdcache(argv: list[str], out: Path) -> dict:
    from kdcache.cli.main import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([a.replace("{out}", str(out)) for a in argv])
    lines = err.getvalue().strip().splitlines()
    return {"code": code, "last_line": lines[-1] if lines else "", "traceback": "Traceback" in err.getvalue()}


def snapshot(mount: Path, copy_to: Path) -> list[str]:
    """Copy everything on the mount out of it (the mount dies with this process); return the relative paths."""
    shutil.copytree(mount, copy_to, dirs_exist_ok=True)
    return sorted(str(p.relative_to(mount)) for p in mount.rglob("*"))


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    work = Path(spec["work"])
    report = {}

    read_only = work / "ro"
    mount_tmpfs(read_only, "ro,size=1m")
    report["read_only"] = kdcache(spec["argv"], read_only / "out") | {"left": snapshot(read_only, work / "ro-copy")}

    full = work / "full"
    mount_tmpfs(full, f"size={spec['size']}")
    report["full"] = kdcache(spec["argv"], full / "out") | {"left": snapshot(full, work / "after-full")}
    subprocess.run(["mount", "-o", "remount,size=256m", str(full)], check=True)
    rerun = kdcache(spec["argv"] + spec.get("rerun_extra", []), full / "out")
    report["rerun"] = rerun | {"left": snapshot(full, work / "after-rerun")}
    (work / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(sys.argv[1])

"""`kdcache data download nyu`: fetch NYU Depth v2's labeled .mat and official splits.mat, resumably.

Each file streams into `<name>.part` with a progress bar; a rerun after an interruption continues it with an
HTTP Range request. The final name appears only once the byte count matches the server's Content-Length and
the file opens as the expected format (h5py keys and shapes for the .mat, scipy.io.loadmat keys for
splits.mat). No checksum is recorded: the publishers do not give one, so none can be verified.

The URLs can be overridden (a mirror, or a local server in tests) with `$KDCACHE_NYU_LABELED_URL` and
`$KDCACHE_NYU_SPLITS_URL`, or with the command's `--labeled-url` / `--splits-url`.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from kdcache import __version__
from kdcache.console import ProgressLines, console, log
from kdcache.data.nyu import MAT_NAME, SPLITS_NAME, check_labeled_mat, read_splits_mat
from kdcache.data.splits import data_root
from kdcache.errors import KdcacheError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it comes from and how to tell that what arrived is the right thing."""

    name: str
    url: str
    url_env: str
    check: Callable[[Path], object]

    def resolved_url(self, override: str | None) -> str:
        return override or os.environ.get(self.url_env) or self.url


NYU_FILES = (
    RemoteFile(MAT_NAME, "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
               "KDCACHE_NYU_LABELED_URL", check_labeled_mat),
    RemoteFile(SPLITS_NAME, "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat",
               "KDCACHE_NYU_SPLITS_URL", read_splits_mat),
)

# Datasets kdcache reads but cannot fetch: say where they come from instead.
MANUAL = {
    "kitti": "KITTI needs a registration: download raw data and data_depth_annotated from the KITTI website and "
             "lay them out as in the kdcache.data.kitti docstring",
    "hrwsi": "download HR-WSI from its authors (Xian et al., CVPR 2020) and unpack it as <root>/hrwsi/{train,val}",
}


def _progress() -> ProgressLines:
    # Bytes want their own columns (MB, MB/s), otherwise the same look (and plain lines off a terminal) as
    # kdcache.console.progress.
    return ProgressLines(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                         TimeRemainingColumn(), unit="B", lines=not console.is_terminal, console=console,
                         disable=not console.is_terminal)


def _total_from_content_range(header: str | None) -> tuple[int | None, int | None]:
    """`bytes 100-199/200` -> (100, 200); `bytes */200` -> (None, 200)."""
    match = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", header or "")
    if not match:
        return None, None
    start = int(match[1]) if match[1] else None
    return start, (int(match[2]) if match[2] != "*" else None)


def _open(url: str, offset: int):
    headers = {"User-Agent": f"kdcache/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def _stream(url: str, part: Path, env: str) -> int | None:
    """Append the rest of `url` to `part`; returns the total size the server announced (None if it did not)."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the .part may already be complete
            return _total_from_content_range(err.headers.get("Content-Range"))[1]
        raise KdcacheError(f"download of {url} failed: HTTP {err.code} {err.reason}; check the URL "
                           f"(override it with ${env}) and run the command again")
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise KdcacheError(f"cannot reach {url} ({reason}); check the network or set ${env} to a mirror, then "
                           f"run the command again")
    with response:
        start, total = _total_from_content_range(response.headers.get("Content-Range"))
        length = response.headers.get("Content-Length")
        if response.status == 206 and start == offset:
            mode = "ab"
            total = total if total is not None else (offset + int(length) if length else None)
        else:  # the server ignored the Range request: start over
            offset, mode = 0, "wb"
            total = int(length) if length else None
        with open(part, mode) as out, _progress() as bar:
            task = bar.add_task(part.name.removesuffix(".part"), total=total, completed=offset)
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
            except (OSError, urllib.error.URLError, ValueError) as err:  # reset, timeout, IncompleteRead
                out.flush()
                raise KdcacheError(f"download of {url} broke off after {out.tell():,} bytes ({type(err).__name__}); "
                                   f"run the command again to resume from {part}")
    return total


def fetch_file(url: str, dest: Path, check: Callable[[Path], object], env: str = "the URL option",
               force: bool = False) -> Path:
    """Download `url` to `dest` through `dest.part` (resumed if present); `check(path)` must accept the result."""
    dest = Path(dest)
    if dest.exists() and not force:
        try:
            check(dest)
        except KdcacheError as err:
            raise KdcacheError(f"{dest} exists but is not valid ({err}); rerun with --force to download it again")
        log(f"{dest} is already present and valid")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        total = _stream(url, part, env)
    except BaseException:
        if part.exists() and part.stat().st_size == 0:  # nothing arrived: nothing to resume from
            part.unlink()
        raise
    size = part.stat().st_size if part.exists() else 0
    if total is not None and size != total:
        raise KdcacheError(f"download of {url} stopped at {size:,} of {total:,} bytes; run the command again to "
                           f"resume from {part}")
    try:
        check(part)
    except KdcacheError as err:
        part.unlink(missing_ok=True)  # resuming a file of the wrong kind cannot help
        raise KdcacheError(f"{url} did not deliver the expected file and the download was deleted: {err}")
    os.replace(part, dest)
    log(f"saved {dest} ({size:,} bytes)")
    return dest


def download_nyu(root: str | os.PathLike | None = None, labeled_url: str | None = None,
                 splits_url: str | None = None, force: bool = False) -> list[Path]:
    """Fetch `nyu_depth_v2_labeled.mat` (~2.8 GB per the NYU page) and `splits.mat` into `<root>/nyu/`; returns their paths."""
    folder = data_root(root) / "nyu"
    overrides = {MAT_NAME: labeled_url, SPLITS_NAME: splits_url}
    with _removed_if_left_empty(folder):
        return [fetch_file(spec.resolved_url(overrides[spec.name]), folder / spec.name, spec.check, spec.url_env,
                           force) for spec in NYU_FILES]


@contextmanager
def _removed_if_left_empty(folder: Path):
    """A failed download leaves no empty folder behind: the folders it created (`folder` and any missing parent,
    such as ./data) are removed again when they are still empty; a `.part` worth resuming keeps its folder."""
    created = [path for path in (folder, *folder.parents) if not path.exists()]
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            try:
                path.rmdir()
            except OSError:  # not empty (or already gone): keep it
                break
        raise


def download(dataset: str, root: str | os.PathLike | None = None, **options) -> list[Path]:
    """`kdcache data download DATASET`: only NYU is public without registration; others explain where to go."""
    name = dataset.lower()
    if name == "nyu":
        return download_nyu(root, **options)
    if name in MANUAL:
        raise KdcacheError(f"{dataset} cannot be downloaded automatically: {MANUAL[name]}")
    raise KdcacheError(f"unknown dataset '{dataset}' to download: use `kdcache data download nyu`")

"""`folder:PATH`: every image under a folder (recursive), unlabeled, e.g. your own photos for distillation.

Files are matched by extension (jpg, jpeg, png, webp, bmp, tif, tiff; any case) and identified by their
sorted relative paths. Opening the split probes every file's header: by default files that cannot be read
(empty, not an image, over the pixel limit) are skipped with a logged reason and a final count;
`strict=True` raises on the first one instead. Pixel data that turns out corrupt later (a truncated file)
raises `BadSampleError` from `__getitem__`; plain iteration (`for s in split`) and `iter_samples` skip and count it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from kdcache.console import log, progress
from kdcache.data.images import load_rgb, open_image
from kdcache.data.paths import path_text
from kdcache.data.sample import Sample
from kdcache.data.splits import register_split
from kdcache.errors import BadSampleError, KdcacheError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
_LOGGED_SKIPS = 10  # individual reasons logged before only the count is reported


def walk_files(folder: Path, extensions: frozenset[str]) -> tuple[list[Path], list[Path]]:
    """(files under `folder` with one of `extensions`, any case, sorted by relative path; the paths left out as
    repeats).

    Symlinks are followed, but every real folder is walked once and every real file is read once: a link back
    up the tree (a loop) or a second link to the same file is a repeat, and the first path in sorted order keeps
    the file (so the ids of a folder without repeats are its relative paths, as always)."""
    found, repeats, walked = {}, [], set()
    for directory, subfolders, files in os.walk(folder, followlinks=True):
        if os.path.realpath(directory) in walked:
            repeats.append(Path(directory))
            subfolders.clear()
            continue
        walked.add(os.path.realpath(directory))
        subfolders.sort()  # a fixed walk order: the same path is the first to reach a real folder on every run
        for name in sorted(files):
            if Path(name).suffix.lower() in extensions:
                path = Path(directory) / name
                found.setdefault(os.path.realpath(path), []).append(path)
    kept = []
    for paths in found.values():
        first, *others = sorted(paths, key=lambda p: p.relative_to(folder).as_posix())
        kept.append(first)
        repeats += others
    return sorted(kept, key=lambda p: p.relative_to(folder).as_posix()), repeats


def find_files(folder: Path, extensions: frozenset[str]) -> list[Path]:
    """Files under `folder` with one of `extensions`, each real file once (`walk_files`)."""
    return walk_files(folder, extensions)[0]


def find_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files under `folder`, the paths left out as repeats): `walk_files` with the image extensions."""
    return walk_files(folder, IMAGE_EXTENSIONS)


def under_root(path_text: str, root: Path) -> Path:
    """The path a `prefix:PATH` split names: as given (absolute, or relative to the current directory), else
    inside the data root."""
    path = Path(path_text).expanduser()
    if not path.is_absolute() and not path.exists() and (root / path).exists():
        path = root / path  # `folder:photos` may name a folder inside the data root
    return path


def _resolve(path_text: str, root: Path) -> Path:
    path = under_root(path_text, root)
    if not path.is_dir():
        raise KdcacheError(f"folder split path '{path_text}' is not an existing folder: give a folder of images, "
                           f"e.g. folder:/data/photos (absolute, or relative to the current directory or data root)")
    return path


class FolderSplit:
    """Unlabeled images found under a folder; unreadable files are dropped (or raise) when it is opened."""

    labeled = False
    space = None

    def __init__(self, folder: Path, strict: bool = False, max_pixels: int | None = None):
        self.folder, self.strict, self.max_pixels = folder, strict, max_pixels
        self.name = f"folder:{folder}"
        self.skipped: list[BadSampleError] = []
        candidates, repeats = find_images(folder)
        if repeats:
            log(f"{self.name}: skipped {len(repeats)} path(s) leading to a folder or image already read (a symlink "
                f"loop or a second link), e.g. {path_text(repeats[0])}: each real image is read once")
        self.paths = self._readable(candidates)
        if not self.paths:
            raise KdcacheError(f"no readable images under {folder} ({len(candidates)} files with an image extension "
                               f"{', '.join(sorted(IMAGE_EXTENSIONS))}): point folder: at a folder of images")
        self.ids = [path_text(p.relative_to(folder)) for p in self.paths]

    def _readable(self, candidates: list[Path]) -> list[Path]:
        readable = []
        # Headers are read by a few threads (the reads overlap; on network storage they dominate), in order.
        with progress(unit="file", transient=True) as bar, ThreadPoolExecutor(8) as pool:
            task = bar.add_task(f"checking {self.folder.name}", total=len(candidates))
            for path, err in zip(candidates, pool.map(self._header_error, candidates)):
                bar.advance(task)
                if err is not None:
                    if self.strict:
                        raise err
                    self._skip(err)
                    continue
                readable.append(path)
        if self.skipped:
            log(f"{self.name}: skipped {len(self.skipped)} of {len(candidates)} files that cannot be read "
                f"(pass --strict, or strict=True in Python, to stop on them instead)")
        return readable

    def _header_error(self, path: Path) -> BadSampleError | None:
        try:
            open_image(path, self.max_pixels, decode=False).close()
        except BadSampleError as err:
            return err
        return None

    def _skip(self, err: BadSampleError) -> None:
        self.skipped.append(err)
        if len(self.skipped) <= _LOGGED_SKIPS:
            log(f"skipping {err.path}: {err.reason}")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Sample:
        path = self.paths[index]
        image = load_rgb(path, self.max_pixels)
        return Sample(self.ids[index], image, meta={"dataset": "folder", "source": str(path)})

    def __iter__(self) -> Iterator[Sample]:
        """`for sample in split` follows the split's policy: a file that turns out corrupt is skipped, logged and
        counted in `skipped` (or raises when strict), as in `iter_samples`."""
        for index in range(len(self)):
            try:
                yield self[index]
            except BadSampleError as err:
                if self.strict:
                    raise
                self._skip(err)


@register_split("folder:", labeled=False, space=None)
def folder(path_text: str, root: Path, strict: bool = False, max_pixels: int | None = None, **_: Any) -> FolderSplit:
    """Every image under PATH (recursive), unlabeled; unreadable files skipped unless strict."""
    return FolderSplit(_resolve(path_text, root), strict=strict, max_pixels=max_pixels)

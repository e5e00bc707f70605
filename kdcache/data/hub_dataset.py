"""`dataset:PATH`: a Hugging Face `datasets` dataset on disk, e.g. a depth dataset fetched from the hub.

PATH is a folder written by `Dataset.save_to_disk` (one split of a `DatasetDict`: `dataset:PATH/train`), a
.parquet file, a folder of them (recursive: the hub's `data/` or `default/train/` folders), or a glob such as
`dataset:/data/nyu/data/train-*.parquet`. Parquet files are converted once into the `datasets` cache
(`$HF_DATASETS_CACHE`), as `datasets` does for every hub dataset, then read memory-mapped.

Reader options (`--split-option`, recorded in the manifest): `image=COLUMN` (default `image`), `depth=COLUMN`
(the ground truth; without it the split is unlabeled), `space=depth|disparity` (default `depth`: metres) and
`depth_scale=S` (stored value / S = the GT, e.g. 1000 for millimetres). Depth columns may be images (16-bit PNGs),
arrays or nested lists; NaN, infinite, negative (and, for metric depth, zero) values are invalid pixels. Sample
ids are row numbers. Needs the `datasets` package: `pip install "kdcache[datasets]"`.
"""

from __future__ import annotations

import glob
import io
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from kdcache.data.folder import find_files, under_root
from kdcache.data.images import check_same_size, sanitize_depth, to_rgb_array
from kdcache.data.sample import Sample
from kdcache.data.splits import iter_samples, register_split
from kdcache.errors import BadSampleError, KdcacheError

SPACES = ("depth", "disparity")
# The hub's parquet file names: train-00000-of-00004.parquet
_HUB_FILE = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)-\d{5}-of-\d{5}\.parquet$")


def _datasets():
    try:
        import datasets
    except ImportError:
        raise KdcacheError('dataset: splits need the `datasets` package: pip install "kdcache[datasets]"') from None
    return datasets


def _parquet_files(path_text: str, root: Path) -> list[Path] | None:
    """The parquet files PATH names (a glob, a file or a folder of them), or None when it names none."""
    if any(char in path_text for char in "*?"):
        return sorted(Path(p) for p in glob.glob(str(Path(path_text).expanduser()), recursive=True))
    path = under_root(path_text, root)
    if path.is_file():
        return [path] if path.suffix == ".parquet" else None
    files = find_files(path, frozenset({".parquet"})) if path.is_dir() else []
    parts = sorted({m["split"] for m in (_HUB_FILE.match(f.name) for f in files) if m})
    if len(parts) > 1:
        raise KdcacheError(f"{path} holds the parquet files of splits {', '.join(parts)}: name one, e.g. "
                           f"dataset:{path}/**/{parts[0]}-*.parquet")
    return files or None


def load_table(path_text: str, root: Path):
    """The `datasets.Dataset` PATH names, or a one-line error saying what PATH should be."""
    datasets = _datasets()
    parquet = _parquet_files(path_text, root)
    if parquet:
        quiet = not datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()  # a conversion bar per file would bury kdcache's own output
        try:
            return datasets.Dataset.from_parquet([str(p) for p in parquet], split="train")
        finally:
            if not quiet:
                datasets.enable_progress_bars()
    path = under_root(path_text, root)
    if (path / "dataset_dict.json").is_file():
        parts = sorted(p.name for p in path.iterdir() if (p / "state.json").is_file())
        raise KdcacheError(f"{path} holds a DatasetDict with splits {', '.join(parts)}: name one, e.g. "
                           f"dataset:{path / (parts[0] if parts else 'train')}")
    if not (path / "state.json").is_file():
        raise KdcacheError(f"dataset split path '{path_text}' is neither a save_to_disk folder nor parquet files: "
                           "give the folder Dataset.save_to_disk wrote, a .parquet file, a folder or a glob of them")
    return datasets.load_from_disk(str(path))


def _picture(value: Any) -> Image.Image:
    """An image cell as Pillow sees it: decoded by an `Image` feature, or raw bytes / an array without one."""
    if isinstance(value, dict) and value.get("bytes"):
        return Image.open(io.BytesIO(value["bytes"]))
    return value if isinstance(value, Image.Image) else Image.fromarray(np.asarray(value))


class HubDataset:
    """Rows of a `datasets.Dataset`: the image column as RGB, the depth column (if any) as GT in `space`."""

    def __init__(self, table, name: str, image: str, depth: str | None, space: str, depth_scale: float,
                 strict: bool | None):
        self.name, self.image, self.depth = name, image, depth
        self.labeled = depth is not None
        self.space = space if self.labeled else None
        self.depth_scale = depth_scale
        self.strict = self.labeled if strict is None else strict
        self.skipped: list[BadSampleError] = []
        missing = [column for column in (image, depth) if column is not None and column not in table.column_names]
        if missing:
            option = "image" if missing[0] == image else "depth"
            raise KdcacheError(f"{name} has no column '{missing[0]}' (columns: {', '.join(table.column_names)}): "
                               f"pass --split-option {option}=COLUMN")
        # Depth cells as arrays straight from Arrow (an Array2D as Python lists would be slow); images stay Pillow's.
        self.table = table.with_format("numpy", columns=[depth], output_all_columns=True) if depth else table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        where = f"{self.name} row {index}"
        row = self.table[index]
        try:
            image = to_rgb_array(_picture(row[self.image]))
        except Exception as err:  # not an image feature, or bytes that do not decode
            raise BadSampleError(where, f"column '{self.image}' is not a readable image ({type(err).__name__})")
        meta = {"dataset": "dataset", "source": self.name, "row": index}
        if not self.labeled:
            return Sample(str(index), image, meta=meta)
        depth = np.asarray(row[self.depth]).astype(np.float32) / np.float32(self.depth_scale)
        if depth.ndim != 2:
            raise BadSampleError(where, f"column '{self.depth}' holds a {depth.shape} array, not an HxW map")
        check_same_size(where, image, depth, what=self.depth)
        depth, valid = sanitize_depth(depth, None, space=self.space)
        return Sample(str(index), image, depth, valid, self.space, meta)

    def __iter__(self) -> Iterator[Sample]:
        return iter_samples(self, skipped=self.skipped)


def _check_options(depth: Any, space: Any, depth_scale: Any) -> None:
    if space not in SPACES:
        raise KdcacheError(f"bad --split-option space={space}: use space=depth (metres) or space=disparity")
    if isinstance(depth_scale, str) or not depth_scale > 0:
        raise KdcacheError(f"bad --split-option depth_scale={depth_scale}: give a number > 0 (stored value / scale "
                           "= the GT), e.g. depth_scale=1000 for millimetres")
    if depth is None and (space != "depth" or depth_scale != 1):
        raise KdcacheError("space= and depth_scale= describe a depth column: name it with --split-option "
                           "depth=COLUMN, or leave them out for an unlabeled split")


@register_split("dataset:", labeled=None, space=None)
def dataset(path_text: str, root: Path, image: str = "image", depth: str | None = None, space: str = "depth",
            depth_scale: float = 1.0, strict: bool | None = None, **_: Any) -> HubDataset:
    """A `datasets` dataset on disk (save_to_disk folder or parquet files); labeled when depth=COLUMN is given."""
    _check_options(depth, space, depth_scale)
    return HubDataset(load_table(path_text, root), f"dataset:{path_text}", str(image),
                      None if depth is None else str(depth), space, float(depth_scale), strict)

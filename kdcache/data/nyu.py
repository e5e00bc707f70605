"""NYU Depth v2: `nyu-test` (654 frames) and `nyu-train` (795 frames), the official labeled split.

Expected layout under the data root (either one is enough for `nyu-test`; `nyu-train` needs the first):

    <root>/nyu/nyu_depth_v2_labeled.mat      # MATLAB v7.3 (HDF5), 1449 frames; `kdcache data download nyu`
    <root>/nyu/splits.mat                    # optional: trainNdxs / testNdxs (else the copy shipped with kdcache)
    <root>/nyu/official_splits/test/<scene>/rgb_XXXXX.jpg       # BTS "official_splits" layout, test only:
    <root>/nyu/official_splits/test/<scene>/sync_depth_XXXXX.png  # uint16 millimetres, 0 = invalid

Ground truth is `rawDepths` by default (the BTS / ZoeDepth metric protocol; valid = depth > 0); `gt="filled"`
selects the hole-filled `depths`. Sample ids are the 0-based frame index (`"00045"`), identical in both
layouts, and samples come in frame order.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from kdcache.data.images import check_same_size, load_depth_png, load_rgb, sanitize_depth
from kdcache.data.paths import incomplete_data, missing_data
from kdcache.data.sample import Sample
from kdcache.data.splits import register_split
from kdcache.errors import BadSampleError, KdcacheError

MAT_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"
FOLDER_NAME = "official_splits"
INTRINSICS = {"fx": 518.8579, "fy": 519.4696, "cx": 325.5824, "cy": 253.7362}
GT_KEYS = {"raw": "rawDepths", "filled": "depths"}
_GT_ALIASES = {"raw": "raw", "rawdepths": "raw", "filled": "filled", "depths": "filled"}
DOWNLOAD_HINT = "run `kdcache data download nyu`"


def _gt_kind(gt: str) -> str:
    try:
        return _GT_ALIASES[gt.lower()]
    except KeyError:
        raise KdcacheError(f"unknown NYU ground truth gt={gt!r}: use gt='raw' (rawDepths, default) or gt='filled'")


# ---- the labeled .mat (HDF5) --------------------------------------------------------------------------------

def check_labeled_mat(path: Path) -> int:
    """Structural check of `nyu_depth_v2_labeled.mat`; returns the frame count or raises `KdcacheError`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("images", "depths", "rawDepths") if k not in f]
            if missing:
                raise KdcacheError(f"{path} is not NYU's labeled .mat: it lacks {', '.join(missing)}; "
                                   f"re-download it with `kdcache data download nyu`")
            images, depths, raw = f["images"].shape, f["depths"].shape, f["rawDepths"].shape
    except OSError as err:
        raise KdcacheError(f"{path} is not a readable HDF5 (MATLAB v7.3) file ({err}); "
                           f"re-download it with `kdcache data download nyu`")
    # h5py shows MATLAB's column-major arrays with reversed axes: images (N, 3, W, H), depths (N, W, H).
    if len(images) != 4 or images[1] != 3 or depths != raw or depths != (images[0], images[2], images[3]):
        raise KdcacheError(f"{path} has unexpected shapes images={images} depths={depths} rawDepths={raw} "
                           f"(expected (N,3,W,H) and (N,W,H)); re-download it with `kdcache data download nyu`")
    return int(images[0])


def read_splits_mat(path: Path) -> dict[str, np.ndarray]:
    """`splits.mat` (MATLAB v5, 1-based) -> {"train": 0-based indices, "test": 0-based indices}."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError / MatReadError / NotImplementedError (v7.3)
        raise KdcacheError(f"{path} is not a readable MATLAB v5 splits.mat ({err}); delete it to use the split "
                           f"shipped with kdcache, or re-download it with `kdcache data download nyu`")
    if "trainNdxs" not in mat or "testNdxs" not in mat:
        raise KdcacheError(f"{path} lacks trainNdxs / testNdxs: it is not NYU's splits.mat; delete or replace it")
    out = {"train": np.asarray(mat["trainNdxs"]).ravel().astype(np.int64) - 1,
           "test": np.asarray(mat["testNdxs"]).ravel().astype(np.int64) - 1}
    if min(out["train"].min(initial=0), out["test"].min(initial=0)) < 0:
        raise KdcacheError(f"{path} holds an index below 1: MATLAB indices are 1-based; replace the file")
    return out


def shipped_splits() -> dict[str, np.ndarray]:
    """The official split copied into the package (1-based in the JSON, 0-based here)."""
    text = resources.files("kdcache").joinpath("resources", "nyu_official_splits.json").read_text()
    data = json.loads(text)
    return {part: np.asarray(data[part], dtype=np.int64) - 1 for part in ("train", "test")}


class NyuLabeledMat:
    """Frames of the labeled .mat, read lazily one at a time; the HDF5 file is opened once per process."""

    labeled = True
    space = "depth"

    def __init__(self, name: str, mat_path: Path, frames: np.ndarray, gt: str = "raw", strict: bool = True):
        self.name, self.mat_path, self.frames = name, Path(mat_path), np.asarray(frames, dtype=np.int64)
        self.gt, self.strict = _gt_kind(gt), strict
        self.ids = [f"{frame:05d}" for frame in self.frames]
        self._handle, self._pid = None, None

    def __len__(self) -> int:
        return len(self.frames)

    def __getstate__(self) -> dict[str, Any]:
        # HDF5 handles cannot be pickled; a spawned DataLoader worker opens its own.
        return {**self.__dict__, "_handle": None, "_pid": None}

    def _file(self):
        import h5py

        if self._handle is None or self._pid != os.getpid():
            # A handle inherited through fork is not safe to share: each process opens its own.
            self._handle, self._pid = h5py.File(self.mat_path, "r"), os.getpid()
        return self._handle

    def _text(self, f, key: str, frame: int) -> str | None:
        try:
            chars = f[f[key][0, frame]][()]
            return "".join(chr(int(c)) for c in np.asarray(chars).ravel())
        except Exception:  # an optional label: a file without it still yields images and depth
            return None

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        frame = int(self.frames[index])
        where = f"{self.mat_path}[frame {frame}]"
        try:
            f = self._file()
            image = np.ascontiguousarray(f["images"][frame].transpose(2, 1, 0))
            depth = np.ascontiguousarray(f[GT_KEYS[self.gt]][frame].T)
            scene_type, scene = self._text(f, "sceneTypes", frame), self._text(f, "scenes", frame)
        except Exception as err:
            raise BadSampleError(where, f"cannot read frame from the HDF5 file ({type(err).__name__}: {err})")
        check_same_size(where, image, depth)
        depth, valid = sanitize_depth(depth, None, space="depth")
        meta = {"dataset": "nyu", "frame_index": frame, "matlab_index": frame + 1, "gt": GT_KEYS[self.gt],
                "scene_type": scene_type, "scene": scene, "focal": INTRINSICS["fx"], "intrinsics": dict(INTRINSICS),
                "source": str(self.mat_path)}
        return Sample(self.ids[index], image, depth, valid, "depth", meta)


# ---- the BTS "official_splits" folder ------------------------------------------------------------------------

def read_file_list(list_file: Path | None) -> list[tuple[str, str, float]]:
    """`rgb depth focal` lines (BTS format); the shipped 654-frame test list by default."""
    if list_file is None:
        text = resources.files("kdcache").joinpath("resources", "nyu_test_files_with_gt.txt").read_text()
    else:
        try:
            text = Path(list_file).read_text()
        except OSError as err:
            raise KdcacheError(f"cannot read NYU file list {list_file} ({err.strerror}): check the path")
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise KdcacheError(f"line {number} of the NYU file list is not 'rgb depth focal': {line!r}")
        rows.append((parts[0].lstrip("/"), parts[1].lstrip("/"), float(parts[2])))
    return rows


def _frame_of(rgb: str) -> int:
    return int(Path(rgb).stem.rsplit("_", 1)[-1])


class NyuOfficialSplitsFolder:
    """`official_splits/test/<scene>/rgb_XXXXX.jpg` + `sync_depth_XXXXX.png` (uint16 mm), as BTS packages it."""

    labeled = True
    space = "depth"

    def __init__(self, name: str, folder: Path, rows: list[tuple[str, str, float]], strict: bool = True):
        self.name, self.folder, self.strict = name, Path(folder), strict
        self.rows = sorted(rows, key=lambda row: _frame_of(row[0]))
        self.ids = [f"{_frame_of(rgb):05d}" for rgb, _, _ in self.rows]
        missing = [self.folder / p for row in self.rows for p in row[:2] if not (self.folder / p).is_file()]
        if missing:
            raise incomplete_data(f"NYU {folder}", missing, 2 * len(self.rows),
                                  f"re-create the folder or use the labeled .mat ({DOWNLOAD_HINT})")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Sample:
        rgb_rel, depth_rel, focal = self.rows[index]
        rgb_path, depth_path = self.folder / rgb_rel, self.folder / depth_rel
        image = load_rgb(rgb_path)
        depth, valid = load_depth_png(depth_path, scale=1000.0)
        check_same_size(depth_path, image, depth)
        frame = _frame_of(rgb_rel)
        meta = {"dataset": "nyu", "frame_index": frame, "matlab_index": frame + 1, "gt": "rawDepths",
                "scene_type": Path(rgb_rel).parent.name, "focal": focal, "intrinsics": dict(INTRINSICS),
                "source": str(rgb_path), "depth_source": str(depth_path)}
        return Sample(self.ids[index], image, depth, valid, "depth", meta)


# ---- split factories -----------------------------------------------------------------------------------------

def _mat_split(name: str, part: str, nyu_dir: Path, gt: str, strict: bool) -> NyuLabeledMat:
    mat_path = nyu_dir / MAT_NAME
    count = check_labeled_mat(mat_path)
    splits_path = nyu_dir / SPLITS_NAME
    frames = (read_splits_mat(splits_path) if splits_path.exists() else shipped_splits())[part]
    if len(frames) and frames.max() >= count:
        source = splits_path if splits_path.exists() else "the official split shipped with kdcache"
        raise KdcacheError(f"{mat_path} holds {count} frames but {source} indexes frame {frames.max() + 1}: the .mat "
                           f"is incomplete or the split does not belong to it; {DOWNLOAD_HINT} again")
    return NyuLabeledMat(name, mat_path, frames, gt=gt, strict=strict)


def _open(name: str, part: str, root: Path, gt: str = "raw", layout: str = "auto", strict: bool = True,
          list_file: str | os.PathLike | None = None, **_: Any):
    nyu_dir = root / "nyu"
    mat_path, folder = nyu_dir / MAT_NAME, nyu_dir / FOLDER_NAME / part
    if layout not in ("auto", "mat", FOLDER_NAME):
        raise KdcacheError(f"unknown NYU layout {layout!r}: use 'auto', 'mat' or '{FOLDER_NAME}'")
    use_mat = layout == "mat" or (layout == "auto" and (mat_path.exists() or part == "train"))
    if use_mat:
        if not mat_path.exists():
            raise missing_data(f"NYU Depth v2 ({name})", root, [mat_path], DOWNLOAD_HINT)
        return _mat_split(name, part, nyu_dir, gt, strict)
    if not folder.is_dir():
        raise missing_data(f"NYU Depth v2 ({name})", root, [mat_path, folder], DOWNLOAD_HINT)
    if _gt_kind(gt) != "raw":
        raise KdcacheError(f"{folder} holds raw depth only: use gt='raw', or the labeled .mat for gt='filled'")
    return NyuOfficialSplitsFolder(name, folder, read_file_list(list_file), strict=strict)


@register_split("nyu-test", labeled=True, space="depth", count=654, licence="NYU Depth v2 (research use)")
def nyu_test(root: Path, **options: Any):
    """The 654 official NYU Depth v2 test frames at 480x640, raw depth (metres) by default."""
    return _open("nyu-test", "test", root, **options)


@register_split("nyu-train", labeled=True, space="depth", count=795, licence="NYU Depth v2 (research use)")
def nyu_train(root: Path, **options: Any):
    """The 795 official NYU Depth v2 labeled training frames (from the .mat)."""
    return _open("nyu-train", "train", root, **options)

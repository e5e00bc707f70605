"""KITTI: `kitti-eigen-test`, the 652 Eigen test frames that have the improved (annotated) ground truth.

Expected layout under the data root (KITTI needs a registration, so it is not downloaded automatically;
get "raw data" and "depth annotated" from the KITTI website):

    <root>/kitti/raw/<date>/<drive>_sync/image_02/data/<frame>.png             # KITTI raw, left colour camera
    <root>/kitti/raw/<date>/calib_cam_to_cam.txt                               # optional: focal length in meta
    <root>/kitti/data_depth_annotated/train/<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png
    <root>/kitti/data_depth_annotated/val/<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png

e.g. `raw/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png`. GT PNGs are uint16,
depth = value / 256 metres, valid = value > 0. The frame list is the standard 697-line Eigen test list shipped
with kdcache (`<date>/<drive>_sync <frame> gt|none`); the 45 frames without annotated GT are left out.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from kdcache.data.images import check_same_size, load_depth_png, load_rgb
from kdcache.data.paths import incomplete_data, missing_data
from kdcache.data.sample import Sample
from kdcache.data.splits import register_split

GT_SCALE = 256.0
FETCH_HINT = "get KITTI raw data and data_depth_annotated from the KITTI website and unpack them as shown in the " \
             "kdcache.data.kitti docstring"


def eigen_test_frames() -> list[tuple[str, str]]:
    """(`<date>/<drive>_sync`, frame) of the 652 Eigen test frames that have annotated GT, in list order."""
    text = resources.files("kdcache").joinpath("resources", "kitti_eigen_test_files.txt").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip()]
    return [(drive, frame) for drive, frame, has_gt in rows if has_gt == "gt"]


@lru_cache(maxsize=64)
def focal_length(calib_file: Path) -> float | None:
    """fx of the rectified left colour camera (`P_rect_02`) from `calib_cam_to_cam.txt`, if the file is there."""
    try:
        for line in calib_file.read_text().splitlines():
            if line.startswith("P_rect_02:"):
                return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class KittiEigenTest:
    """RGB from KITTI raw plus the annotated depth PNG found in `data_depth_annotated/{train,val}`."""

    name = "kitti-eigen-test"
    labeled = True
    space = "depth"

    def __init__(self, root: Path, strict: bool = True):
        self.root, self.strict = root / "kitti", strict
        self.raw_dir, self.gt_dir = self.root / "raw", self.root / "data_depth_annotated"
        if not self.raw_dir.is_dir() or not self.gt_dir.is_dir():
            raise missing_data("KITTI (kitti-eigen-test)", root, [self.raw_dir, self.gt_dir], FETCH_HINT,
                               need_all=True)
        self.frames = eigen_test_frames()
        self.ids = [f"{drive}/{frame}" for drive, frame in self.frames]
        self.rgb_paths = [self.raw_dir / drive / "image_02" / "data" / f"{frame}.png" for drive, frame in self.frames]
        self.gt_paths = [self._find_gt(drive, frame) for drive, frame in self.frames]
        missing = [p for p in self.rgb_paths if not p.is_file()] + [p for p in self.gt_paths if not p.is_file()]
        if missing:
            raise incomplete_data(f"KITTI under {self.root}", missing, 2 * len(self.frames), FETCH_HINT)

    def _find_gt(self, drive: str, frame: str) -> Path:
        drive_name = drive.split("/")[-1]
        candidates = [self.gt_dir / part / drive_name / "proj_depth" / "groundtruth" / "image_02" / f"{frame}.png"
                      for part in ("train", "val")]
        # The official annotated release puts each drive in exactly one of train/ and val/.
        return next((p for p in candidates if p.is_file()), candidates[0])

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> Sample:
        drive, frame = self.frames[index]
        rgb_path, gt_path = self.rgb_paths[index], self.gt_paths[index]
        image = load_rgb(rgb_path)
        depth, valid = load_depth_png(gt_path, scale=GT_SCALE)
        check_same_size(gt_path, image, depth)
        date = drive.split("/")[0]
        meta = {"dataset": "kitti", "date": date, "drive": drive.split("/")[-1], "frame": frame,
                "focal": focal_length(self.raw_dir / date / "calib_cam_to_cam.txt"),
                "source": str(rgb_path), "depth_source": str(gt_path)}
        return Sample(self.ids[index], image, depth, valid, "depth", meta)


@register_split("kitti-eigen-test", labeled=True, space="depth", count=652, licence="KITTI (CC BY-NC-SA 3.0)")
def kitti_eigen_test(root: Path, strict: bool = True, **_: Any) -> KittiEigenTest:
    """The 652 Eigen test frames with improved annotated GT (uint16 / 256 metres)."""
    return KittiEigenTest(root, strict=strict)

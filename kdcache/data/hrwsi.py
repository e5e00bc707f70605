"""HR-WSI: `hrwsi-train` (20,378 images) and `hrwsi-val` (400), relative disparity ground truth.

Expected layout under the data root:

    <root>/hrwsi/{train,val}/imgs/<stem>.jpg
    <root>/hrwsi/{train,val}/gts/<stem>.png           # disparity from optical flow (larger = nearer)
    <root>/hrwsi/{train,val}/valid_masks/<stem>.png   # nonzero = valid

GT values are kept as stored (float32) with `space="disparity"`: they have an unknown scale and shift per
image, so train against them only with scale-and-shift-invariant losses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdcache.data.images import check_same_size, load_gray, load_mask, load_rgb, sanitize_depth
from kdcache.data.paths import incomplete_data, missing_data
from kdcache.data.sample import Sample
from kdcache.data.splits import register_split

FETCH_HINT = "download HR-WSI from the authors' page (Xian et al., CVPR 2020) and unpack it there"


class HrwsiSplit:
    """Images with relative-disparity GT and a validity mask, in sorted file-name order."""

    labeled = True
    space = "disparity"

    def __init__(self, name: str, root: Path, part: str, strict: bool = True):
        self.name, self.strict = name, strict
        self.folder = root / "hrwsi" / part
        imgs = self.folder / "imgs"
        if not imgs.is_dir():
            raise missing_data(f"HR-WSI ({name})", root, [imgs], FETCH_HINT)
        self.image_paths = sorted(p for p in imgs.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        self.ids = [p.stem for p in self.image_paths]
        missing = [self.folder / sub / f"{stem}.png" for stem in self.ids for sub in ("gts", "valid_masks")
                   if not (self.folder / sub / f"{stem}.png").is_file()]
        if missing:
            raise incomplete_data(f"HR-WSI {part} under {self.folder}", missing, 2 * len(self.ids),
                                  "every image needs gts/<stem>.png and valid_masks/<stem>.png; re-extract the archive")

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> Sample:
        stem, rgb_path = self.ids[index], self.image_paths[index]
        gt_path, mask_path = self.folder / "gts" / f"{stem}.png", self.folder / "valid_masks" / f"{stem}.png"
        image = load_rgb(rgb_path)
        disparity = load_gray(gt_path)
        mask = load_mask(mask_path)
        check_same_size(gt_path, image, disparity, what="disparity")
        check_same_size(mask_path, image, mask, what="valid mask")
        disparity, valid = sanitize_depth(disparity, mask, space="disparity")
        meta = {"dataset": "hrwsi", "source": str(rgb_path), "depth_source": str(gt_path), "mask_source": str(mask_path)}
        return Sample(stem, image, disparity, valid, "disparity", meta)


@register_split("hrwsi-train", labeled=True, space="disparity", count=20378, licence="HR-WSI (research use)")
def hrwsi_train(root: Path, strict: bool = True, **_: Any) -> HrwsiSplit:
    """HR-WSI training images with relative disparity GT and valid masks."""
    return HrwsiSplit("hrwsi-train", root, "train", strict=strict)


@register_split("hrwsi-val", labeled=True, space="disparity", count=400, licence="HR-WSI (research use)")
def hrwsi_val(root: Path, strict: bool = True, **_: Any) -> HrwsiSplit:
    """HR-WSI validation images with relative disparity GT and valid masks."""
    return HrwsiSplit("hrwsi-val", root, "val", strict=strict)

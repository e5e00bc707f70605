"""Data: every dataset kdcache reads, behind one registry of named splits.

    >>> from kdcache.data import open_split, list_splits
    >>> ds = open_split("synth-train[:8]")
    >>> ds[0].image.shape, ds[0].depth.dtype
"""

from kdcache.data.sample import Sample
from kdcache.data.splits import (
    SPLITS,
    SplitDataset,
    data_root,
    iter_samples,
    list_splits,
    open_split,
    parse_split,
    register_split,
)

# Importing the reader modules registers their splits.
from kdcache.data import synth, nyu, kitti, hrwsi, folder, video_split, hub_dataset  # noqa: E402,F401  isort:skip

__all__ = [
    "SPLITS",
    "Sample",
    "SplitDataset",
    "data_root",
    "iter_samples",
    "list_splits",
    "open_split",
    "parse_split",
    "register_split",
]

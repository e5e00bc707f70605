"""Helpers for the training tests: a tiny kdcache store written with the real store writer.

The bench scripts reuse it (bench/train.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdcache.store import build_manifest, feature_array_name, group_name, shard_count, shard_range
from kdcache.store.layout import create_split_arrays, split_fields
from kdcache.store.writer import ShardWriter, create_store

RESOLUTION = (32, 48)
# From scratch: the suite runs offline, and no test weights sit in its HF cache (`--no-pretrained` on the CLI).
TINY_STUDENT = {"student": "test_efficientnet+nnconv5", "student_overrides": {"width": 8}, "pretrained": False}
FEATURE_LAYER = "neck.0"
FEATURE_SHAPE = (6, 4, 6)


def scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A sloped floor with a box: image brightness follows depth, so a student can learn something."""
    rows = np.linspace(0, 1, height)[:, None]
    depth = (1.0 + 4.0 * (1 - rows)) * np.ones((1, width)) * rng.uniform(0.8, 1.2)
    top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
    depth[top:top + height // 3, left:left + width // 3] *= 0.5
    shade = (255 * (1 - depth / depth.max()))[..., None] * rng.uniform(0.6, 1.0, size=3)
    image = np.clip(shade + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
    return image, depth.astype(np.float32)


def build_cache(path: Path, splits: dict[str, int], labeled: dict[str, bool] | None = None, teacher: bool = True,
                features: bool = True, shard_size: int = 8, resolution=RESOLUTION, space: str = "depth",
                teacher_name: str = "tiny-teacher") -> str:
    """Write a store at `path` with `splits` {spec: count}; returns its url."""
    labeled = labeled or {}
    height, width = resolution
    feature_shapes = {feature_array_name(FEATURE_LAYER): FEATURE_SHAPE} if teacher and features else {}
    entries, groups = {}, set()
    for spec, count in splits.items():
        group = group_name(spec, groups)
        groups.add(group)
        is_labeled = labeled.get(spec, "aux" not in spec)
        entries[spec] = {"group": group, "source": spec, "root": None, "count": count, "labeled": is_labeled,
                         "space": space if is_labeled else None, "shards": shard_count(count, shard_size)}
    teacher_entry = {"name": teacher_name, "identity": {"source": "test"}, "output_space": "disparity",
                     "preprocess": {}, "precision": "fp32", "flip_tta": False, "licence": "test"} if teacher else None
    feature_entry = None
    if feature_shapes:
        feature_entry = {"layers": [FEATURE_LAYER], "grid": list(FEATURE_SHAPE[1:]), "budget_bytes": None,
                         "pooling": "area", "per_layer": {FEATURE_LAYER: {
                             "array": feature_array_name(FEATURE_LAYER), "source_channels": FEATURE_SHAPE[0],
                             "channels": FEATURE_SHAPE[0], "pca": False}}}
    manifest = build_manifest(teacher=teacher_entry, resolution=resolution, shard_size=shard_size, splits=entries,
                              features=feature_entry)
    url = str(path)

    def build(root):
        for spec, entry in entries.items():
            fields = split_fields(resolution, entry["labeled"], teacher, feature_shapes)
            create_split_arrays(root, entry["group"], entry["count"], shard_size, fields)

    create_store(url, manifest, build)
    writer = ShardWriter(url)
    for index, (spec, entry) in enumerate(entries.items()):
        rng = np.random.default_rng(index)
        for shard in range(entry["shards"]):
            start, stop = shard_range(shard, entry["count"], shard_size)
            writer.submit(entry["group"], shard, start, _shard_data(rng, stop - start, entry, resolution, teacher,
                                                                    feature_shapes, start))
    writer.close()
    return url


def _shard_data(rng, n, entry, resolution, teacher, feature_shapes, start) -> dict[str, np.ndarray]:
    height, width = resolution
    images, depths = zip(*(scene(rng, height, width) for _ in range(n)))
    depth = np.stack(depths)
    data = {"image": np.stack(images), "ids": np.array([f"s{start + i}" for i in range(n)]),
            "readable": np.ones(n, bool)}
    if teacher:
        data["teacher"] = (1.0 / depth + rng.normal(0, 0.01, depth.shape)).astype(np.float16)
        data["teacher_ok"] = np.ones(n, bool)
        for array, shape in feature_shapes.items():
            data[f"features/{array}"] = rng.normal(size=(n, *shape)).astype(np.float16)
    if entry["labeled"]:
        data["gt"] = depth
        data["valid"] = depth > 0
    return data

"""What a precompute run asks for, and how a new store is laid out (feature channels, PCA bases).

`requested_manifest` describes the request in manifest form (compared with an existing store's manifest
before anything is written); `create_new_store` runs the teacher on the first samples to learn each
layer's channels, fits PCA bases when the byte budget requires it, creates every array, and writes the
manifest last.
"""

from __future__ import annotations

import json
import math

import numpy as np
import zarr

from kdcache.errors import KdcacheError
from kdcache.precompute.features import POOLING, PcaBasis, cell_vectors, plan_channels
from kdcache.precompute.loader import ResizedSamples, collate_records
from kdcache.precompute.targets import FeaturePlan, TargetMaker
from kdcache.store import layout
from kdcache.store import manifest as mf
from kdcache.store.writer import create_store

PCA_FIT_SAMPLES = 64


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def teacher_entry(teacher, precision: str, flip_tta: bool) -> dict | None:
    if teacher is None:
        return None
    return _jsonable({
        "name": teacher.name,
        "identity": getattr(teacher, "identity", {}),
        "output_space": teacher.output_space,
        "preprocess": getattr(teacher, "preprocess", {}),
        "precision": getattr(teacher, "precision", precision),  # effective: teachers run fp32 on CPU
        "flip_tta": bool(flip_tta),
        "licence": getattr(teacher, "licence", None),
    })


def split_entries(datasets: dict, shard_size: int, root) -> dict[str, dict]:
    entries, taken = {}, set()
    for spec, dataset in datasets.items():
        group = layout.group_name(spec, taken)
        taken.add(group)
        entries[spec] = {
            "group": group, "source": spec, "root": str(root) if root is not None else None,
            "count": len(dataset), "labeled": bool(dataset.labeled), "space": dataset.space,
            "shards": layout.shard_count(len(dataset), shard_size),
        }
    return entries


def requested_manifest(teacher, precision, flip_tta, resolution, shard_size, datasets, root, layers, grid, budget):
    features = None
    if teacher is not None and layers:
        features = {"layers": list(layers), "grid": list(grid), "budget_bytes": int(budget), "pooling": POOLING}
    return mf.build_manifest(
        teacher=teacher_entry(teacher, precision, flip_tta), resolution=resolution, shard_size=shard_size,
        splits=split_entries(datasets, shard_size, root), features=features,
    )


def _first_readable_batches(dataset, resolution, labeled, limit: int, batch_size: int):
    samples = ResizedSamples(dataset, resolution, labeled)
    records = [samples[i] for i in range(min(len(samples), limit * 4))]  # skip a few unreadable ones
    records = [r for r in records if r["readable"]][:limit]
    if not records:
        raise KdcacheError("no readable sample among the first ones of the first split: check the --split paths")
    for start in range(0, len(records), batch_size):
        yield collate_records(records[start:start + batch_size])


def fit_features(maker: TargetMaker, dataset, manifest: dict, batch_size: int, fit_samples: int):
    """Run the teacher on the first samples: per-layer channels, the channel plan and PCA bases."""
    request = manifest["features"]
    grid, budget = tuple(request["grid"]), request["budget_bytes"]
    per_sample = max(1, math.ceil(16384 / fit_samples))
    vectors: dict[str, list[np.ndarray]] = {layer: [] for layer in request["layers"]}
    source: dict[str, tuple] = {}
    keep: dict[str, int] = {}
    for batch in _first_readable_batches(dataset, manifest["resolution"], False, fit_samples, batch_size):
        _, pooled = maker.raw(batch["image"])
        for layer, values in pooled.items():
            if not np.isfinite(values.cpu().numpy()).all():
                raise KdcacheError(f"teacher layer '{layer}' returned non-finite features on the first samples: "
                                   "check the teacher weights or use --precision fp32")
            source[layer] = tuple(values.shape[1:])
            vectors[layer].append(cell_vectors(values, per_sample))
        keep = plan_channels({layer: shape[0] for layer, shape in source.items()}, grid, budget)
        if all(keep[layer] == source[layer][0] for layer in keep):
            break  # nothing to reduce: no PCA, no need to look at more samples
    per_layer, bases = {}, {}
    for layer in request["layers"]:
        array = layout.feature_array_name(layer)
        reduce = keep[layer] < source[layer][0]
        bases[layer] = PcaBasis.fit(np.concatenate(vectors[layer]), keep[layer]) if reduce else None
        per_layer[layer] = {
            "array": array, "source_channels": source[layer][0], "channels": keep[layer], "pca": reduce,
            "components": f"pca/{array}/components" if reduce else None,
            "mean": f"pca/{array}/mean" if reduce else None,
        }
    features = dict(request, per_layer=per_layer, pca_fit_samples=fit_samples, reconstruct=mf.RECONSTRUCT)
    return features, bases


def create_new_store(url, manifest, maker, datasets, batch_size, fit_samples=PCA_FIT_SAMPLES) -> dict:
    """Create arrays (and PCA bases) for `manifest`; returns the manifest as written."""
    bases = {}
    if manifest["features"] is not None:
        first = next(iter(datasets.values()))
        manifest["features"], bases = fit_features(maker, first, manifest, batch_size, fit_samples)

    def build(root: zarr.Group) -> None:
        features = manifest["features"] or {"per_layer": {}, "grid": [1, 1]}
        shapes = {
            entry["array"]: (entry["channels"], *features["grid"]) for entry in features["per_layer"].values()
        }
        for spec, entry in manifest["splits"].items():
            fields = layout.split_fields(manifest["resolution"], entry["labeled"], manifest["teacher"] is not None, shapes)
            layout.create_split_arrays(root, entry["group"], entry["count"], manifest["shard_size"], fields)
        for layer, basis in bases.items():
            if basis is not None:
                layout.write_pca(root, features["per_layer"][layer]["array"], basis.components, basis.mean)

    create_store(url, manifest, build)
    return manifest


def feature_plan(url: str, manifest: dict) -> FeaturePlan:
    """The FeaturePlan of an existing store (layers, grid, arrays, PCA bases read back)."""
    features = manifest.get("features")
    if not features:
        return FeaturePlan()
    from kdcache.store.reader import _open_root

    root = _open_root(url)
    bases = {}
    for layer, entry in features["per_layer"].items():
        bases[layer] = None
        if entry["pca"]:
            bases[layer] = PcaBasis(np.asarray(root[entry["components"]][...]), np.asarray(root[entry["mean"]][...]))
    arrays = {layer: entry["array"] for layer, entry in features["per_layer"].items()}
    return FeaturePlan(list(features["layers"]), tuple(features["grid"]), arrays, bases)

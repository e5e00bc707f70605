"""What a precompute run asks for, and how a new store is laid out (feature channels, PCA bases).

`requested_manifest` describes the request in manifest form (compared with an existing store's manifest
before anything is written); `create_new_store` runs the teacher on the first batches of the already running
loader to learn each layer's channels, fits PCA bases when the byte budget requires it, creates every array,
and writes the manifest last; `add_splits` adds the arrays of splits an existing store lacks, manifest last.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import torch
import zarr

from kdcache.errors import KdcacheError
from kdcache.precompute.features import PCA_MAX_VECTORS, POOLING, PcaBasis, cell_vectors, check_grid, plan_channels
from kdcache.precompute.image_loader import ResizedSamples, collate_records, shard_batches
from kdcache.precompute.teacher_targets import FeaturePlan, TargetMaker
from kdcache.store import layout
from kdcache.store import manifest as mf
from kdcache.store.schema import read_pca
from kdcache.store.writer import add_to_store, create_store

FIT_AHEAD = 8  # batches queued on an asynchronous device beyond those the PCA fit reads (busy while the host fits)


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
        features = {"layers": list(layers), "grid": list(check_grid(grid)), "budget_bytes": int(budget),
                    "pooling": POOLING}
    return mf.build_manifest(
        teacher=teacher_entry(teacher, precision, flip_tta), resolution=resolution, shard_size=shard_size,
        splits=split_entries(datasets, shard_size, root), features=features,
    )


def fit_batches(loader, samples: ResizedSamples, count: int, shard_size: int, batch_size: int, owned: set[int]):
    """The first split's batches in index order as `(batch, owned)`: from the running loader for the shards this
    process writes (it yields exactly those, in this order), decoded here for the others (`--shard i/N`)."""
    for shard in range(layout.shard_count(count, shard_size)):
        for indices in shard_batches([shard], count, shard_size, batch_size):
            if shard in owned:
                yield next(loader), True
            else:
                yield dict(collate_records([samples[i] for i in indices]), split=0), False


def fit_features(maker: TargetMaker, batches, manifest: dict, fit_samples: int):
    """Run the teacher on the first samples of the first split: per-layer channels, the channel plan, PCA bases.

    Returns (features manifest entry, bases, owned batches consumed). The consumed batches' raw outputs stay in
    `maker.prefilled`, so the main loop neither decodes nor runs them twice (they are its own batches, so the
    numbers are identical either way).
    """
    request = manifest["features"]
    grid, budget = tuple(request["grid"]), request["budget_bytes"]
    per_sample = max(1, math.ceil(PCA_MAX_VECTORS / fit_samples))
    vectors: dict[str, list[np.ndarray]] = {layer: [] for layer in request["layers"]}
    source: dict[str, tuple] = {}
    keep: dict[str, int] = {}
    consumed: list[dict] = []
    seen = examined = 0
    batches, done = iter(batches), False
    ahead = FIT_AHEAD if maker.runtime.asynchronous else 0  # a CPU teacher computes when called: nothing to overlap
    while not done:
        # Queue the teacher on every batch the fit still needs before reading any of them back, so the device
        # runs them back to back, plus (the first time, on a GPU) FIT_AHEAD more, which keep it busy while the host
        # fits the bases and creates the store; batches launched beyond the point the fit stops go to the main loop.
        # Each batch is launched as soon as the loader hands it over, so the device starts on the first one while
        # the workers still decode the rest of the round.
        round_ = itertools.chain(_round(batches, fit_samples - seen), itertools.islice(batches, ahead))
        ahead = 0
        launched = [(batch, owned, maker.raw(batch["image"])) for batch, owned in round_]
        if not launched:
            break
        for batch, owned, (depth, pooled) in launched:
            if owned:
                maker.prefilled[(batch["split"], *batch["index"].tolist())] = (depth, pooled)
                consumed.append(batch)
            if done or examined >= 4 * fit_samples:  # enough, or mostly unreadable: do not hold a long prefix
                done = True
                continue
            examined += len(batch["index"])
            usable = np.asarray(batch["readable"], dtype=bool).copy()
            for values in pooled.values():  # checked on the device: only flags and the chosen cells travel
                usable &= torch.isfinite(values.reshape(len(usable), -1)).all(dim=1).cpu().numpy()
            if not usable.any():
                continue
            for layer, values in pooled.items():
                source[layer] = tuple(values.shape[1:])
                cells = cell_vectors(values, per_sample).cpu().numpy()  # the fit needs them now
                vectors[layer].append(cells[usable].reshape(-1, source[layer][0]))
            seen += int(usable.sum())
            keep = plan_channels({layer: shape[0] for layer, shape in source.items()}, grid, budget)
            done = seen >= fit_samples or all(keep[layer] == source[layer][0] for layer in keep)  # no PCA needed
    if not source:
        raise KdcacheError(f"no readable sample with finite teacher features among the first {examined} of the first "
                           "split: check the --split paths and the teacher weights")
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
    features = dict(request, per_layer=per_layer, pca_fit_samples=seen, reconstruct=mf.RECONSTRUCT)
    return features, bases, consumed


def _round(batches, samples: int):
    """The next batches from `batches` holding at least `samples` samples (fewer at the end), one at a time."""
    while samples > 0:
        item = next(batches, None)
        if item is None:
            return
        yield item
        samples -= len(item[0]["index"])


def create_new_store(url, manifest, maker, fit_source, fit_samples: int) -> tuple[dict, list[dict]]:
    """Create arrays (and PCA bases) for `manifest`; returns the manifest as written and the loader batches the
    feature fit consumed (`fit_source`: `fit_batches(...)`, used only when features are cached)."""
    bases, consumed = {}, []
    if manifest["features"] is not None:
        manifest["features"], bases, consumed = fit_features(maker, fit_source, manifest, fit_samples)

    def build(root: zarr.Group) -> None:
        _create_splits(root, manifest, manifest["splits"])
        for layer, basis in bases.items():
            if basis is not None:
                layout.write_pca(root, manifest["features"]["per_layer"][layer]["array"], basis.components, basis.mean)

    create_store(url, manifest, build)
    return manifest, consumed


def add_splits(url, stored: dict, requested: dict) -> dict:
    """`stored` with the requested splits it lacks added (their arrays created, the manifest rewritten last); the
    splits already there, their targets and the PCA bases are untouched, so the teacher runs on the new ones only."""
    taken = {entry["group"] for entry in stored["splits"].values()}
    added = {}
    for spec in mf.added_splits(stored, requested):
        group = layout.group_name(spec, taken)  # clear of the stored groups, not just of this request's
        taken.add(group)
        added[spec] = dict(requested["splits"][spec], group=group)
    if not added:
        return stored
    manifest = dict(stored, splits={**stored["splits"], **added})
    groups = [entry["group"] for entry in added.values()]
    add_to_store(url, manifest, groups, lambda root: _create_splits(root, manifest, added))
    return manifest


def _create_splits(root: zarr.Group, manifest: dict, splits: dict[str, dict]) -> None:
    """The arrays of `splits` (manifest split entries), shaped by the store's resolution, teacher and features."""
    features = manifest["features"] or {"per_layer": {}, "grid": [1, 1]}
    shapes = {entry["array"]: (entry["channels"], *features["grid"]) for entry in features["per_layer"].values()}
    for entry in splits.values():
        fields = layout.split_fields(manifest["resolution"], entry["labeled"], manifest["teacher"] is not None, shapes)
        layout.create_split_arrays(root, entry["group"], entry["count"], manifest["shard_size"], fields)


def feature_plan(url: str, manifest: dict) -> FeaturePlan:
    """The FeaturePlan of an existing store (layers, grid, arrays, PCA bases read back)."""
    features = manifest.get("features")
    if not features:
        return FeaturePlan()
    from kdcache.store.reader import open_root

    root = open_root(url)
    bases = {}
    for layer, entry in features["per_layer"].items():
        bases[layer] = None
        if entry["pca"]:  # shapes checked against the manifest before anything is read
            channels, source = entry["channels"], entry["source_channels"]
            bases[layer] = PcaBasis(read_pca(url, root, entry["components"], (channels, source)),
                                    read_pca(url, root, entry["mean"], (source,)))
    arrays = {layer: entry["array"] for layer, entry in features["per_layer"].items()}
    return FeaturePlan(list(features["layers"]), tuple(features["grid"]), arrays, bases)

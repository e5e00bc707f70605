"""The manifest: everything needed to know what a cache holds, stored in the root group's attributes.

`attrs["kdcache"]` is written last when a store is created, so its presence means "fully initialised"
(while creating, the root carries `attrs["kdcache_creating"]` instead). Layout of the manifest:

    format, kdcache_version, created (UTC ISO time)
    teacher: {name, identity, output_space, preprocess, precision, flip_tta, licence} | None ("none" teacher)
    resolution: [H, W]
    resize: how source images and GT were brought to the cache resolution (and what the teacher saw)
    shard_size
    features: {layers, grid, budget_bytes, pooling, per_layer: {layer: {array, source_channels, channels,
               pca, components, mean}}, pca_fit_samples, reconstruct} | None
    splits: {spec: {group, source, root, count, labeled, space, shards}}
    identity: {store, splits: {spec: ...}} (`store_identity`; written with the manifest, derived for older stores)

A restart of `precompute` on an existing store compares its request with `FINGERPRINT` and refuses any
difference (one line naming the option, the stored value and the requested one). Splits are the exception: a
run may name splits the store lacks (they are added, `added_splits`) or only some of its splits, but a split it
shares with the store must have the stored size.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from typing import Any

from kdcache import __version__

FORMAT = 1
ATTR = "kdcache"
CREATING_ATTR = "kdcache_creating"

RESIZE_RULE = {
    "image": "centre-crop to the target aspect ratio, then PIL antialiased bilinear resize to HxW",
    "gt": "same centre crop, then nearest-neighbour resize (depth and valid), so invalid pixels never blend",
    "teacher_input": "the stored uint8 image / 255 as (B,3,H,W) float32; the teacher applies its own "
                     "resize/normalise rule and its output is resized back to HxW",
    "flip_tta": "when set: teacher = (t(x) + flip(t(flip(x)))) / 2; features come from the unflipped pass",
}

RECONSTRUCT = (
    "pooled = stored when pca is false; otherwise pooled[:, c] = sum_j stored[:, j] * components[j, c] + mean[c] "
    "(components (k, C) and mean (C,) float32 at pca/<array>/)"
)

# (label shown to the user, path into the manifest) of everything a resumed run must agree on.
FINGERPRINT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("store format", ("format",)),
    ("teacher", ("teacher", "name")),
    ("teacher identity", ("teacher", "identity")),
    ("teacher precision", ("teacher", "precision")),
    ("flip-TTA", ("teacher", "flip_tta")),
    ("resolution", ("resolution",)),
    ("shard size", ("shard_size",)),
    ("split options", ("split_options",)),
    ("feature layers", ("features", "layers")),
    ("feature grid", ("features", "grid")),
    ("feature budget", ("features", "budget_bytes")),
)


# What a split's targets depend on besides the store-wide FINGERPRINT: the split itself and its size.
SPLIT_IDENTITY = ("source", "count", "labeled", "space")


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(_normalise(value), sort_keys=True, default=str).encode()).hexdigest()[:16]


def store_identity(manifest: dict) -> dict[str, Any]:
    """A fingerprint of what a store's targets are: its teacher, its options (`FINGERPRINT`, the stored feature
    channels) and, per split, its spec and size. Two stores with equal identities hold the same targets for the
    splits they share; a split added later leaves the others' identities (and so runs reading them) as they were."""
    features = manifest.get("features") or {}
    options = {label: _lookup(manifest, path) for label, path in FINGERPRINT}
    options["feature channels"] = {layer: [entry.get("channels"), entry.get("pca")]
                                   for layer, entry in (features.get("per_layer") or {}).items()}
    options["teacher output space"] = _lookup(manifest, ("teacher", "output_space"))
    splits = {spec: _digest({key: entry.get(key) for key in SPLIT_IDENTITY})
              for spec, entry in manifest.get("splits", {}).items()}
    return {"store": _digest(options), "splits": splits}


def run_identity(manifest: dict, specs: list[str]) -> str:
    """The identity a run records of the store it reads: the store's plus that of each split it reads."""
    identity = store_identity(manifest)
    found = [split_entry(manifest, name) for name in specs]  # a run may name a split by spec or group
    read = [(f[0], identity["splits"][f[0]]) if f else (name, None) for name, f in zip(specs, found)]
    return _digest([identity["store"], read])


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def build_manifest(
    *,
    teacher: dict | None,
    resolution: tuple[int, int],
    shard_size: int,
    splits: dict[str, dict],
    features: dict | None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "kdcache_version": __version__,
        "created": now_utc(),
        "teacher": teacher,
        "resolution": [int(resolution[0]), int(resolution[1])],
        "resize": dict(RESIZE_RULE),
        "shard_size": int(shard_size),
        "features": features,
        "splits": splits,
    }


def _lookup(manifest: dict, path: tuple[str, ...]) -> Any:
    value: Any = manifest
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _normalise(value: Any) -> Any:
    # JSON round trips turn tuples into lists; compare them as equals.
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value


def mismatches(stored: dict, requested: dict) -> list[tuple[str, Any, Any]]:
    """(label, stored value, requested value) for every fingerprint entry that differs, then the sizes of the
    splits both name (a split whose source grew or shrank since is another split)."""
    found = []
    for label, path in FINGERPRINT:
        old, new = _normalise(_lookup(stored, path)), _normalise(_lookup(requested, path))
        if old != new:
            found.append((label, old, new))
    shared = [spec for spec in requested.get("splits", {}) if spec in stored.get("splits", {})]
    old, new = ({spec: manifest["splits"][spec].get("count") for spec in shared} for manifest in (stored, requested))
    if old != new:
        found.append(("split sizes", old, new))
    return found


def added_splits(stored: dict, requested: dict) -> list[str]:
    """The requested split specs the store does not hold yet, in request order."""
    return [spec for spec in requested.get("splits", {}) if spec not in stored.get("splits", {})]


def split_entry(manifest: dict, name: str) -> tuple[str, dict] | None:
    """(spec, entry) for a split spec or group name, None if the store has no such split."""
    for spec, entry in manifest.get("splits", {}).items():
        if name in (spec, entry.get("group")):
            return spec, entry
    return None

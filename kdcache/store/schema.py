"""What a store's metadata may say, checked before anything uses it: the manifest and each array's `zarr.json`.

A manifest or `zarr.json` edited by hand, damaged or crafted must never crash a reader with a `KeyError`, a
division by zero or a broadcast error, nor make it allocate what a number in the file asks for. So the
manifest is checked against its schema (types, ranges, the shard count its entries imply) when a store is
opened, and every array against what the manifest implies (shape, dtype, chunking) when it is opened. Every
number that sizes an allocation is bounded here; a violation is one `KdcacheError` line naming the store, the
file and the fix.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from kdcache.errors import KdcacheError
from kdcache.store import layout
from kdcache.store import manifest as mf

# Bounds on what a manifest may claim, far above any real store, so a crafted number never sizes an allocation.
MAX_SIDE = 2**15  # pixels per side of the resolution or the feature grid
MAX_SHARD_SIZE = 2**16  # samples per shard file
MAX_SAMPLES = 2**30  # samples per split (a one-bool-per-sample flag array stays under 1 GiB)
MAX_CHANNELS = 2**16  # stored channels per feature layer
SPACES = ("depth", "disparity")
# Names as layout.py makes them: a group (`group_name`) or a feature array (`feature_array_name`: any layer name
# without slashes); neither may climb out of the store or hide (a leading dot).
GROUP_NAME = re.compile(r"^[A-Za-z0-9\-][A-Za-z0-9._\-]*$")
ARRAY_NAME = re.compile(r"^[^./\\][^/\\]*$")


def damaged(url: str, file: str, problem: str) -> KdcacheError:
    """The one line for metadata that cannot be trusted: which store, which file, what is wrong, the fix."""
    return KdcacheError(f"cache {url}: {file} {problem}: it was edited or damaged; restore it from a copy, or "
                        "rebuild the store with the `kdcache precompute` command that made it (into a new --out)")


class _Checker:
    """Collects the first problem of a manifest, with the key path that holds it."""

    def __init__(self, url: str):
        self.url, self.file = url, f"{url}/zarr.json (the manifest)"

    def fail(self, where: str, problem: str) -> KdcacheError:
        return damaged(self.url, self.file, f"has {where} {problem}".rstrip())

    def get(self, entry: dict, key: str, where: str) -> Any:
        if key not in entry:
            raise self.fail(f"no '{key}'", f"in {where.rstrip('.')}" if where else "")
        return entry[key]

    def integer(self, entry: dict, key: str, where: str, low: int, high: int) -> int:
        value = self.get(entry, key, where)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(f"{where}{key} = {value!r}", f"(expected an integer in {low}..{high})")
        return value

    def typed(self, entry: dict, key: str, where: str, kinds: tuple, optional: bool = False) -> Any:
        value = entry.get(key) if optional else self.get(entry, key, where)
        if not isinstance(value, kinds) and not (optional and value is None):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"{where}{key} = {value!r}", f"(expected {names})")
        return value

    def one_of(self, entry: dict, key: str, where: str, choices: tuple) -> Any:
        value = entry.get(key)
        if value not in choices:
            raise self.fail(f"{where}{key} = {value!r}", f"(expected one of {', '.join(map(repr, choices))})")
        return value

    def pair(self, entry: dict, key: str, where: str) -> list[int]:
        value = self.get(entry, key, where)
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIDE for v in value)):
            raise self.fail(f"{where}{key} = {value!r}", f"(expected [H, W] with sides in 1..{MAX_SIDE})")
        return value

    def name(self, entry: dict, key: str, where: str, pattern: re.Pattern) -> str:
        value = self.typed(entry, key, where, (str,))
        if not pattern.match(value) or value == "pca":
            raise self.fail(f"{where}{key} = {value!r}", "(not a name kdcache writes)")
        return value


def check_manifest(url: str, manifest: Any) -> dict:
    """`manifest` if it is one kdcache can use safely; else one `KdcacheError` line naming what is wrong."""
    check = _Checker(url)
    if not isinstance(manifest, dict):
        raise check.fail("a manifest of type", f"{type(manifest).__name__} (expected an object)")
    check.integer(manifest, "format", "", 1, 2**31)
    for key in ("kdcache_version", "created"):
        check.typed(manifest, key, "", (str,))
    check.pair(manifest, "resolution", "")
    shard_size = check.integer(manifest, "shard_size", "", 1, MAX_SHARD_SIZE)
    check.typed(manifest, "split_options", "", (dict,), optional=True)
    teacher = check.typed(manifest, "teacher", "", (dict,), optional=True)
    if teacher is not None:
        check.typed(teacher, "name", "teacher.", (str,))
        check.one_of(teacher, "output_space", "teacher.", SPACES)
        check.typed(teacher, "precision", "teacher.", (str,))
        check.typed(teacher, "flip_tta", "teacher.", (bool,))
    _check_features(check, manifest, teacher)
    splits = check.typed(manifest, "splits", "", (dict,))
    if not splits:
        raise check.fail("no splits", "")
    groups = set()
    for spec, entry in splits.items():
        where = f"splits[{spec!r}]."
        if not isinstance(entry, dict):
            raise check.fail(where[:-1], f"= {entry!r} (expected an object)")
        group = check.name(entry, "group", where, GROUP_NAME)
        if group in groups:
            raise check.fail(f"{where}group = {group!r}", "(two splits in one group)")
        groups.add(group)
        count = check.integer(entry, "count", where, 0, MAX_SAMPLES)
        check.typed(entry, "labeled", where, (bool,))
        check.one_of(entry, "space", where, (None, *SPACES))
        if "shards" in entry and entry["shards"] != layout.shard_count(count, shard_size):
            raise check.fail(f"{where}shards = {entry['shards']!r}",
                             f"(its count {count} at shard size {shard_size} makes "
                             f"{layout.shard_count(count, shard_size)})")
    if "identity" in manifest and manifest["identity"] != mf.store_identity(manifest):
        raise check.fail("an identity", "that does not match its contents")
    return manifest


def _check_features(check: _Checker, manifest: dict, teacher: dict | None) -> None:
    features = check.typed(manifest, "features", "", (dict,), optional=True)
    if features is None:
        return
    if teacher is None:
        raise check.fail("features", "but no teacher")
    layers = check.typed(features, "layers", "features.", (list,))
    check.pair(features, "grid", "features.")
    per_layer = check.typed(features, "per_layer", "features.", (dict,))
    if not layers or not all(isinstance(layer, str) for layer in layers) or set(layers) != set(per_layer):
        raise check.fail(f"features.layers = {layers!r}", "(expected the names of features.per_layer)")
    for layer, entry in per_layer.items():
        where = f"features.per_layer[{layer!r}]."
        if not isinstance(entry, dict):
            raise check.fail(where[:-1], f"= {entry!r} (expected an object)")
        array = check.name(entry, "array", where, ARRAY_NAME)
        check.integer(entry, "channels", where, 1, MAX_CHANNELS)
        if check.typed(entry, "pca", where, (bool,)):
            check.integer(entry, "source_channels", where, 1, MAX_CHANNELS)
            for part in ("components", "mean"):
                if entry.get(part) != f"pca/{array}/{part}":
                    raise check.fail(f"{where}{part} = {entry.get(part)!r}", f"(expected 'pca/{array}/{part}')")


def expected_fields(manifest: dict, labeled: bool) -> dict[str, layout.FieldSpec]:
    """The arrays a split of this (checked) manifest holds, by path in its group (`features/<array>`)."""
    features = manifest.get("features") or {"per_layer": {}, "grid": [1, 1]}
    shapes = {entry["array"]: (entry["channels"], *features["grid"]) for entry in features["per_layer"].values()}
    fields = layout.split_fields(manifest["resolution"], labeled, manifest.get("teacher") is not None, shapes)
    return {field.name: field for field in fields}


def read_pca(url: str, root, path: str, shape: tuple[int, ...]) -> np.ndarray:
    """A PCA basis array (`components` (k, C) or `mean` (C,), float32) once its metadata matches the manifest."""
    try:
        array = root[path]
    except (KeyError, ValueError, TypeError) as err:
        raise damaged(url, f"{url}/{path}/zarr.json", f"cannot be read ({type(err).__name__})") from None
    found = (tuple(getattr(array, "shape", ())), getattr(array, "dtype", None))
    if found[0] != shape or found[1] != np.float32:
        raise damaged(url, f"{url}/{path}/zarr.json",
                      f"says shape {found[0]}, dtype {found[1]}; the manifest implies {shape}, float32")
    return np.asarray(array[...])


def check_array(url: str, path: str, array, field: layout.FieldSpec | None, count: int, shard_size: int) -> None:
    """Refuse an array whose shape, dtype or chunking is not what the manifest implies (`field` None:
    `shard_done`, one bool per shard)."""
    if field is None:
        shape, dtype, chunks, shards = (layout.shard_count(count, shard_size),), "bool", (1,), None
    else:
        shape, dtype = (count, *field.sample_shape), field.dtype
        chunks, shards = ((1, *field.sample_shape), (shard_size, *field.sample_shape)) if field.sample_shape \
            else ((shard_size,), None)
    found = (tuple(array.shape), tuple(array.chunks), array.shards and tuple(array.shards))
    if found != (shape, chunks, shards):
        raise damaged(url, f"{url}/{path}/zarr.json", f"says shape {found[0]}, chunks {found[1]}, shards {found[2]}; "
                                                       f"the manifest implies {shape}, {chunks}, {shards}")
    kind = np.dtype(array.dtype)
    if (kind.kind not in "TUO") if dtype == "str" else kind != np.dtype(dtype):
        raise damaged(url, f"{url}/{path}/zarr.json", f"says dtype {kind}; the manifest implies {dtype}")

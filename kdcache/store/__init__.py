"""Store: the Zarr v3 teacher cache (layout, manifest, durable writer, fast reader).

    >>> from kdcache.store import open_store
    >>> store = open_store("cache/dpt-large.zarr").require(splits=["nyu-train"], resolution=(240, 320))
    >>> split = store.split("nyu-train")
    >>> for start, stop in split.shuffled_blocks(seed=0, epoch=0):
    ...     batch = split.read(start, stop, fields=["image", "teacher", "teacher_ok", "features"])
"""

from kdcache.store.layout import feature_array_name, group_name, shard_count, shard_range
from kdcache.store.manifest import FORMAT, build_manifest
from kdcache.store.reader import CacheStore, StoredSplit, open_store

__all__ = [
    "FORMAT",
    "CacheStore",
    "StoredSplit",
    "build_manifest",
    "feature_array_name",
    "group_name",
    "open_store",
    "shard_count",
    "shard_range",
]

"""A store as kdcache wrote it before every chunk carried a checksum (for the tests and bench/cache_read.py).

`drop_chunk_checksums(url)` rewrites every per-sample array of a store in the earlier layout, with the same values:
inner chunks `bytes` + `blosc` (no `crc32c`), per-sample flags with zarr's default codecs only.
"""

from __future__ import annotations

import warnings

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

from kdcache.store import open_store, shard_range
from kdcache.store.writer import ShardWriter


def drop_chunk_checksums(url: str) -> str:
    store = open_store(url)
    root = zarr.open_group(url, mode="r+")
    for spec in store.splits:
        split = store.split(spec)
        values = split.read()
        paths = {field: split.array(field).path for field in values}
        for field, path in [*paths.items(), ("shard_done", f"{split.group}/shard_done")]:
            array = root[path]
            compressors = [c for c in array.compressors if not isinstance(c, Crc32cCodec)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # variable-length strings: a zarr-python extension
                root.create_array(path, shape=array.shape, dtype=str if field == "ids" else array.dtype,
                                  chunks=array.chunks, shards=array.shards, compressors=compressors,
                                  fill_value=array.fill_value, overwrite=True)
        writer = ShardWriter(url)
        for shard in range(split.n_shards):
            start, stop = shard_range(shard, len(split), split.shard_size)
            writer.submit(split.group, shard, start, {paths[f].split("/", 1)[1]: np.asarray(v[start:stop])
                                                      for f, v in values.items()})
        writer.close()
    return url

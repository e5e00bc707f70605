"""Fast whole-shard reads: one GET per shard, then Blosc-decode its chunks directly.

zarr-python decodes every inner chunk through its async codec pipeline, which costs about as much as
the decompression itself for one-sample chunks. A training loader reads whole shards (`shuffled_blocks`),
so for the layout kdcache writes (sharding codec, inner chunks `bytes` + `blosc`, index `bytes` + `crc32c`
at the end; zarr v3 spec) this module reads the shard file once, checks the index checksum, and decodes
each chunk with numcodecs. Any other layout (or anything unexpected) returns None and the caller falls
back to zarr, so results never depend on which path ran (tests compare both).
"""

from __future__ import annotations

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore

MISSING = np.uint64(2**64 - 1)  # index entry of a chunk that was never written (all fill value)
_BLOSC = Blosc()


def sharding_codec(array: zarr.Array) -> ShardingCodec | None:
    codecs = getattr(array.metadata, "codecs", ())
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    inner_ok = [type(c) for c in sharding.codecs] == [BytesCodec, BloscCodec]
    index_ok = [type(c) for c in sharding.index_codecs] == [BytesCodec, Crc32cCodec]
    if not (inner_ok and index_ok and sharding.index_location == ShardingCodecIndexLocation.end):
        return None
    return sharding


def read_shard(array: zarr.Array, shard: int) -> np.ndarray | None:
    """Samples of shard `shard` (along axis 0) as one array, or None when the fast path does not apply."""
    sharding = sharding_codec(array)
    if sharding is None or tuple(sharding.chunk_shape[1:]) != tuple(array.shape[1:]) or sharding.chunk_shape[0] != 1:
        return None
    shard_len = array.shards[0]
    start = shard * shard_len
    count = min(array.shape[0], start + shard_len) - start
    dtype = np.dtype(array.dtype).newbyteorder("<") if np.dtype(array.dtype).itemsize > 1 else np.dtype(array.dtype)
    out = np.empty((count, *array.shape[1:]), dtype=dtype)
    key = array.metadata.encode_chunk_key((shard,) + (0,) * (array.ndim - 1))
    path = f"{array.store_path.path}/{key}" if array.store_path.path else key
    raw = _shard_bytes(array.store_path.store, path)
    if raw is None:
        out[...] = array.fill_value  # the shard was all fill value
        return out
    index_bytes = shard_len * 16
    if raw.size < index_bytes + 4:
        return None
    index_raw = raw[raw.size - index_bytes - 4:raw.size - 4]
    if not _checksum_ok(index_raw.tobytes(), raw[raw.size - 4:].tobytes()):
        return None
    index = index_raw.view("<u8").reshape(shard_len, 2)
    sample_bytes = int(np.prod(array.shape[1:])) * dtype.itemsize
    for position in range(count):
        offset, nbytes = index[position]
        if offset == MISSING:
            out[position] = array.fill_value  # a chunk equal to the fill value is not stored
            continue
        target = out[position]
        if _decoded_size(raw[int(offset):int(offset) + 16]) != sample_bytes:
            return None
        _BLOSC.decode(raw[int(offset):int(offset + nbytes)], out=target.reshape(-1).view(np.uint8))  # in place
    return out.astype(dtype.newbyteorder("="), copy=False)


def _shard_bytes(store, path: str) -> np.ndarray | None:
    """The shard file as uint8: memory-mapped on local disks (decoded straight from the page cache) and from
    the read cache of a remote store (`readcache.py`), one GET elsewhere; None when it does not exist."""
    if isinstance(store, LocalStore):
        return _mapped(store.root / path)
    local_copy = getattr(store, "local_copy_sync", None)
    if local_copy is not None:
        file = local_copy(path)
        if file is not None:
            return _mapped(file)
    buffer = zarr.core.sync.sync(store.get(path, prototype=default_buffer_prototype()))
    return None if buffer is None else buffer.as_numpy_array().view(np.uint8).reshape(-1)


def _mapped(file) -> np.ndarray | None:
    if not file.is_file():
        return None
    return np.memmap(file, dtype=np.uint8, mode="r") if file.stat().st_size else np.zeros(0, np.uint8)


def _decoded_size(header: np.ndarray) -> int:
    """Uncompressed size from a Blosc header (bytes 4..8, little endian)."""
    return int(header[4:8].view("<u4")[0]) if header.size >= 8 else -1


def _checksum_ok(payload: bytes, stored: bytes) -> bool:
    import google_crc32c

    return np.uint32(google_crc32c.value(payload)).tobytes() == stored

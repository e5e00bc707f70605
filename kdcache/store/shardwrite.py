"""Whole-shard writes without zarr's per-chunk path: the mirror of shardread.py.

zarr-python encodes every inner chunk through its async codec pipeline, with Python on its event-loop thread
holding the GIL for ~2 ms per one-sample chunk: one writer process then tops out below ~450 samples/s, well
under what one GPU teacher produces. For the layout kdcache creates (sharding codec; inner chunks `bytes` +
`blosc` + `crc32c`; index `bytes` + `crc32c` at the end; zarr v3 spec, "sharding_indexed" codec), this module
encodes a shard's chunks with numcodecs' Blosc (configured exactly as zarr configures it, and releasing the GIL
while it compresses, so a pool of threads encodes in parallel), appends each chunk's checksum, then the index and
its checksum, and returns the file's bytes, to be stored in one put. The result is the same sharded array zarr
writes (tests compare both), so `zarr.open` reads it back unchanged. Chunks equal to the fill value are left out
of the file, as zarr does; a shard whose every chunk is fill is still written (an index of MISSING entries,
where zarr would write no file), so every shard marked done has its file and a missing one is damage
(`kdcache.store.integrity`).
"""

from __future__ import annotations

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec

from kdcache.store.shardread import MISSING, chunk_checksums, chunk_path, crc32c, sharding_codec

_SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}


class ShardEncoder:
    """Encodes whole shards of one sharded array; `ShardEncoder.of(array)` is None for another layout."""

    def __init__(self, array: zarr.Array, blosc: BloscCodec):
        self.array = array
        self.shard_len = array.shards[0]
        self.dtype = np.dtype(array.dtype).newbyteorder("<")
        self.sample_shape = tuple(array.shape[1:])
        self.fill = np.asarray(array.fill_value, dtype=self.dtype)
        self.checksums = chunk_checksums(array)
        # zarr's own BloscCodec configuration (zarr.codecs.blosc), so the bytes are the ones zarr would write
        self.codec = Blosc(cname=blosc.cname.value, clevel=blosc.clevel, shuffle=_SHUFFLES[blosc.shuffle.value],
                           blocksize=blosc.blocksize, typesize=blosc.typesize)

    @classmethod
    def of(cls, array: zarr.Array) -> "ShardEncoder | None":
        sharding = sharding_codec(array)
        if sharding is None or tuple(sharding.chunk_shape) != (1, *array.shape[1:]):
            return None
        return cls(array, sharding.codecs[1])

    def encode(self, start: int, values) -> tuple[str, bytes]:
        """(store key, file bytes) of the shard whose first sample is `start` (a multiple of the shard length);
        `values`: the shard's samples, as one array or a list of consecutive arrays."""
        blocks = values if isinstance(values, (list, tuple)) else [values]
        if start % self.shard_len or any(block.shape[1:] != self.sample_shape for block in blocks):
            raise ValueError(f"shard must start at a multiple of {self.shard_len} with samples of {self.sample_shape}")
        samples = (sample for block in blocks for sample in np.ascontiguousarray(block, dtype=self.dtype))
        index = np.full((self.shard_len, 2), MISSING, dtype="<u8")
        parts, offset = [], 0
        # an all-zero fill is checked on the raw bits (fast for float16 too; -0.0 then counts as data, read back
        # as -0.0 rather than the fill value's 0.0)
        bits = f"u{self.dtype.itemsize}" if not self.fill.view(f"u{self.dtype.itemsize}").any() else None
        for position, sample in enumerate(samples):
            empty = not sample.view(bits).any() if bits else np.array_equal(sample, np.broadcast_to(self.fill, sample.shape))
            if empty:
                continue  # all fill value: not stored (zarr's write_empty_chunks=False)
            encoded = self.codec.encode(sample)
            chunk = [encoded, crc32c(encoded)] if self.checksums else [encoded]  # joined once, below
            nbytes = sum(len(part) for part in chunk)
            index[position] = (offset, nbytes)
            parts += chunk
            offset += nbytes
        index_bytes = index.tobytes()
        return chunk_path(self.array, start), b"".join(parts) + index_bytes + crc32c(index_bytes)


"""Fast whole-shard reads: one GET per shard, then Blosc-decode its chunks directly; every checksum checked.

zarr-python decodes every inner chunk through its async codec pipeline, which costs about as much as
the decompression itself for one-sample chunks. A training loader reads whole shards (`shuffled_blocks`),
so for the layout kdcache writes (sharding codec, inner chunks `bytes` + `blosc` + `crc32c`, index `bytes` +
`crc32c` at the end; zarr v3 spec) this module reads the shard file once, checks the index checksum and each
chunk's, and decodes each chunk with numcodecs. Stores written before chunks carried a checksum (inner chunks
`bytes` + `blosc` only) are read the same way, with the index checksum and the Blosc headers checked. Any other
layout returns None and the caller falls back to zarr, so results never depend on which path ran (tests
compare both).

A file that fails a check raises `DamagedFile` (`MissingFile` when it is not there at all): the reader knows
which split and shard it belongs to and whether the shard was written, and words the error for the user.
"""

from __future__ import annotations

import google_crc32c
import numpy as np
import zarr
from numcodecs import blosc
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import LocalStore

MISSING = np.uint64(2**64 - 1)  # index entry of a chunk that was never written (all fill value)
CHECKSUM_BYTES = 4  # a crc32c codec appends the CRC32C of what it encodes, little endian


class DamagedFile(Exception):
    """A stored file fails a check; the message says how (the caller adds which split, shard and array)."""


class MissingFile(DamagedFile):
    """The file is not there: damage in a shard marked done, nothing yet in one still to write."""


def sharding_codec(array: zarr.Array) -> ShardingCodec | None:
    """The array's sharding codec when it has the layout this module reads, else None."""
    codecs = getattr(array.metadata, "codecs", ())
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    inner_ok = [type(c) for c in sharding.codecs] in ([BytesCodec, BloscCodec], [BytesCodec, BloscCodec, Crc32cCodec])
    index_ok = [type(c) for c in sharding.index_codecs] == [BytesCodec, Crc32cCodec]
    if not (inner_ok and index_ok and sharding.index_location == ShardingCodecIndexLocation.end):
        return None
    return sharding


def chunk_checksums(array: zarr.Array) -> bool:
    """Whether every chunk of `array` carries its own CRC32C (the codec chain ends with `crc32c`)."""
    codecs = getattr(array.metadata, "codecs", ())
    if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
        codecs = codecs[0].codecs
    return bool(codecs) and isinstance(codecs[-1], Crc32cCodec)


def chunk_path(array: zarr.Array, first_sample: int) -> str:
    """Store key of the file (shard, or the chunk of an unsharded array) holding sample `first_sample`."""
    key = array.metadata.encode_chunk_key((first_sample // shard_length(array),) + (0,) * (array.ndim - 1))
    return f"{array.store_path.path}/{key}" if array.store_path.path else key


def shard_length(array: zarr.Array) -> int:
    """Samples per file: the shard of a sharded array, the chunk of an unsharded one."""
    return array.shards[0] if array.shards else array.chunks[0]


def crc32c(payload) -> bytes:
    """CRC32C of a bytes-like object, as the crc32c codec stores it."""
    return google_crc32c.value(payload).to_bytes(CHECKSUM_BYTES, "little")


def checksum_holds(data: np.ndarray) -> bool:
    """Whether `data` (uint8) ends with the CRC32C of what comes before (what the crc32c codec wrote)."""
    return data.size >= CHECKSUM_BYTES and google_crc32c.value(data[:-CHECKSUM_BYTES]) == int.from_bytes(
        data[-CHECKSUM_BYTES:].tobytes(), "little")


def index_bytes(shard_len: int) -> int:
    """Bytes at the end of a shard file taken by its index and the index's checksum."""
    return shard_len * 16 + CHECKSUM_BYTES


def shard_index(raw: np.ndarray, shard_len: int) -> np.ndarray:
    """The (shard_len, 2) index (offset, nbytes) of a shard file (uint8 array), checked (`parse_index`)."""
    return parse_index(raw[max(0, raw.size - index_bytes(shard_len)):], raw.size, shard_len)


def parse_index(tail: np.ndarray, file_size: int, shard_len: int) -> np.ndarray:
    """The index from the last `index_bytes(shard_len)` bytes of a shard file of `file_size` bytes, checked: its
    checksum holds and every chunk it names lies before it."""
    size = index_bytes(shard_len)
    if file_size < size or tail.size < size:
        raise DamagedFile(f"truncated ({file_size} bytes, shorter than its {size}-byte index)")
    tail = tail[tail.size - size:]
    if not checksum_holds(tail):
        raise DamagedFile("bad index checksum (truncated or overwritten)")
    index = tail[:-CHECKSUM_BYTES].view("<u8").reshape(shard_len, 2)
    stored = index[:, 0] != MISSING
    ends = index[stored, 0] + index[stored, 1]
    if stored.any() and (ends.max() > file_size - size or index[stored, 1].min() == 0):
        raise DamagedFile("bad index (a chunk lies outside the file)")
    return index


class ShardFile:
    """A shard file's bytes with its checked index; `chunk(position)` gives one sample's encoded chunk, checked.

    Everything per shard is done once, vectorised (the index, every stored CRC), so a chunk costs one slice and one
    CRC32C: the check stays a few percent of decoding (docs/benchmarks.md, "Chunk checksums")."""

    def __init__(self, raw: np.ndarray, shard_len: int, checksums: bool, sample_bytes: int):
        index = shard_index(raw, shard_len)
        stored = index[:, 0] != MISSING
        trim = CHECKSUM_BYTES if checksums else 0
        if stored.any() and index[stored, 1].min() < trim + 16:  # a Blosc header is 16 bytes
            raise DamagedFile("bad index (a chunk too short to hold anything)")
        self.raw, self.sample_bytes = raw, sample_bytes
        self.spans = [(offset, offset + nbytes - trim) if keep else None
                      for (offset, nbytes), keep in zip(index.tolist(), stored.tolist())]
        self.crcs = None
        if checksums:  # the 4 bytes closing each stored chunk, gathered at once
            crcs = np.zeros(shard_len, dtype="<u4")
            ends = (index[stored, 0] + index[stored, 1]).astype(np.int64)
            closing = raw[ends[:, None] - CHECKSUM_BYTES + np.arange(CHECKSUM_BYTES)]  # (chunks, 4) uint8, a copy
            crcs[stored] = closing.view("<u4")[:, 0]
            self.crcs = crcs.tolist()

    def chunk(self, position: int) -> np.ndarray | None:
        """The Blosc-encoded chunk of sample `position` (its checksum checked, then left off; its header checked to
        hold one sample), None when the index marks it as never written (all fill value)."""
        span = self.spans[position]
        if span is None:
            return None
        chunk = self.raw[span[0]:span[1]]
        if self.crcs is not None and google_crc32c.value(chunk) != self.crcs[position]:
            raise DamagedFile(f"bad checksum in the chunk of sample {position} of the shard")
        if int.from_bytes(chunk[4:8], "little") != self.sample_bytes:  # the uncompressed size in the Blosc header
            raise DamagedFile(f"the chunk of sample {position} of the shard does not hold one sample")
        return chunk


def fast_path(array: zarr.Array) -> bool:
    """Whether `array` has the layout this module reads: sharded, one sample per chunk."""
    sharding = sharding_codec(array)
    return sharding is not None and tuple(sharding.chunk_shape) == (1, *array.shape[1:])


def _sample_layout(array: zarr.Array) -> tuple[np.dtype, int]:
    """(little-endian dtype, bytes of one decoded sample)."""
    dtype = np.dtype(array.dtype).newbyteorder("<") if np.dtype(array.dtype).itemsize > 1 else np.dtype(array.dtype)
    return dtype, int(np.prod(array.shape[1:])) * dtype.itemsize


def check_shard_file(array: zarr.Array, raw: np.ndarray) -> None:
    """Every check `read_shard` makes, on every chunk of a shard file of `array` (a `fast_path` one), without
    decoding: the index checksum, each chunk's checksum and Blosc header. Raises `DamagedFile`."""
    shard = ShardFile(raw, array.shards[0], chunk_checksums(array), _sample_layout(array)[1])
    for position in range(array.shards[0]):
        shard.chunk(position)


def read_shard(array: zarr.Array, shard: int, first: int = 0, stop: int | None = None) -> np.ndarray | None:
    """Samples [first, stop) of shard `shard` (positions within the shard, along axis 0) as one array, or None
    when the fast path does not apply. Raises `DamagedFile` / `MissingFile`."""
    if not fast_path(array):
        return None
    shard_len = array.shards[0]
    start = shard * shard_len
    count = min(array.shape[0], start + shard_len) - start
    stop = count if stop is None else min(stop, count)
    dtype, sample_bytes = _sample_layout(array)
    out = np.empty((stop - first, *array.shape[1:]), dtype=dtype)
    raw = file_bytes(array.store_path.store, chunk_path(array, start))
    if raw is None:
        raise MissingFile("missing file")
    shard_file = ShardFile(raw, shard_len, chunk_checksums(array), sample_bytes)
    for position in range(first, stop):
        target = out[position - first]
        chunk = shard_file.chunk(position)
        if chunk is None:
            target[...] = array.fill_value  # a chunk equal to the fill value is not stored
            continue
        try:
            # in place; numcodecs' own function, not `Blosc().decode`, whose argument checks cost ~8 us a chunk
            blosc.decompress(chunk, target.reshape(-1).view(np.uint8))
        except (RuntimeError, ValueError) as err:
            raise DamagedFile(f"the chunk of sample {position} of the shard does not decode ({err})") from None
    return out.astype(dtype.newbyteorder("="), copy=False)


def read_with_zarr(array: zarr.Array, start: int, stop: int) -> np.ndarray:
    """`array[start:stop]` through zarr, for the arrays the fast path does not read (per-sample flags chunked by
    shard). A missing file of a layout whose chunks carry checksums raises `MissingFile` (kdcache writes every one
    of them, even all fill); a chunk that fails its checksum or does not decode raises `DamagedFile`."""
    if chunk_checksums(array) and not array.shards:
        store = array.store_path.store
        for first in range(start - start % array.chunks[0], stop, array.chunks[0]):
            if not file_exists(store, chunk_path(array, first)):
                raise MissingFile("missing file")
    try:
        return array[start:stop]
    except (ValueError, RuntimeError) as err:  # crc32c's "checksum do not match", a codec's decoding error
        raise DamagedFile("bad chunk checksum" if "checksum" in str(err) else f"does not decode ({err})") from None


def file_bytes(store, path: str) -> np.ndarray | None:
    """A stored file as uint8: memory-mapped on local disks (decoded straight from the page cache) and from the
    read cache of a remote store (`readcache.py`), one GET elsewhere; None when it does not exist."""
    if isinstance(store, LocalStore):
        return _mapped(store.root / path)
    local_copy = getattr(store, "local_copy_sync", None)
    if local_copy is not None:
        file = local_copy(path)
        if file is not None:
            return _mapped(file)
    buffer = zarr.core.sync.sync(store.get(path, prototype=default_buffer_prototype()))
    return None if buffer is None else buffer.as_numpy_array().view(np.uint8).reshape(-1)


def file_exists(store, path: str) -> bool:
    """Whether a stored file exists: a stat on local disks (zarr's async `exists` costs ~0.2 ms a call), the
    read cache's copy of a remote store (the copy zarr's next read is served from, so no HEAD every epoch), else
    one HEAD."""
    if isinstance(store, LocalStore):
        return (store.root / path).is_file()
    local_copy = getattr(store, "local_copy_sync", None)
    if local_copy is not None and local_copy(path) is not None:
        return True
    return zarr.core.sync.sync(store.exists(path))


def _mapped(file) -> np.ndarray | None:
    if not file.is_file():
        return None
    if not file.stat().st_size:
        return np.zeros(0, np.uint8)
    # a plain ndarray view of the map: slicing a np.memmap costs a Python call per slice, and reads slice a lot
    return np.memmap(file, dtype=np.uint8, mode="r").view(np.ndarray)


def done_flags(array: zarr.Array) -> np.ndarray:
    """A split's `shard_done` as bools; a flag whose chunk fails its checksum counts as not done, so the shard is
    redone rather than trusted."""
    try:
        return np.asarray(array[:], dtype=bool)
    except (ValueError, RuntimeError):
        flags = np.zeros(array.shape, dtype=bool)
        for shard in range(array.shape[0]):
            try:
                flags[shard] = bool(array[shard])
            except (ValueError, RuntimeError):
                pass
        return flags

"""The on-disk layout of a kdcache store: group names, arrays, dtypes, chunks, shards and codecs.

One zarr group per split. Per-sample maps have chunks of one sample (the unit of reading) and shards of
`shard_size` samples (the unit of writing: one file per shard, written whole by one process). Per-sample
scalars (`ids`, `teacher_ok`, `readable`) are chunked by shard, so every file belongs to exactly one shard
and concurrent `--shard i/N` writers never touch the same file. `shard_done` has one chunk per shard and
is set only after that shard's data is durable: it is the resume record. A done shard has a file in every
per-sample array (the writer stores even an all-fill one), and every chunk carries its CRC32C, so damage is
caught on read (`shardread.py`) and by `kdcache cache verify` (`integrity.py`).

    <split>/image        (N, H, W, 3) uint8    the resized student input (what the teacher saw)
    <split>/teacher      (N, H, W)    float16  teacher output at the cache resolution (zeros if not ok)
    <split>/teacher_ok   (N,)         bool     teacher output finite and stored
    <split>/gt           (N, H, W)    float32  ground truth, nearest-resized (labeled splits)
    <split>/valid        (N, H, W)    bool     ground-truth validity (labeled splits)
    <split>/features/<l> (N, C, h, w) float16  pooled (and possibly PCA-reduced) teacher features
    <split>/ids          (N,)         str      sample ids ("" for unreadable samples)
    <split>/readable     (N,)         bool     False where the source sample could not be decoded
    <split>/shard_done   (n_shards,)  bool     resume record
    pca/<l>/components   (k, C)       float32  PCA basis of layer l (only when channels were reduced)
    pca/<l>/mean         (C,)         float32
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

# Chosen by measurement (docs/benchmarks.md, "Codecs"), for a store written at a GPU teacher's pace (~500
# samples/s, every sample encoded on the host) and read every epoch by every variant.
# Images: lz4 + bitshuffle decodes 2.5x faster than zstd (0.14 vs 0.35 ms per 240x320 image) for 1.24x instead
# of 1.33x, and encodes in 0.1 ms. Float maps (teacher f16, GT f32): byte shuffle + zstd level 1. A continuous
# map's low mantissa byte is noise whatever the level, so level 3 buys 5-9 % in size (teacher-like f16 1.92x vs
# 1.82x; synthetic-world GT f32 1.99x vs 1.85x) for 2-4x the encoding time (1.24 vs 0.30 ms; 0.87 vs 0.43 ms).
# Bitshuffle packs boolean masks.
FLOAT_CODEC = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
# Pooled, PCA-projected features are close to incompressible (zstd 3 gets 1.31x on a DPT's, lz4 1.13x) while
# zstd costs 10x the encoding time (0.74 vs 0.07 ms per layer and sample): at a GPU teacher's pace that is 1.4
# host cores for four layers, for 14 % fewer feature bytes. lz4 also decodes 6x faster for training.
FEATURE_CODEC = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
IMAGE_CODEC = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
MASK_CODEC = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
# Per-sample scalars (ids, flags) and shard_done: zarr's default compressor for them.
SCALAR_CODEC = ZstdCodec(level=0, checksum=False)
# Every chunk carries the CRC32C of its encoded bytes (Zarr v3's `crc32c` codec, last in the chunk pipeline), so a
# read checks every chunk, not only a shard's index (docs/architecture.md, "What a store guarantees"). It costs
# 4 bytes per chunk and ~3 % of a chunk's decoding time (docs/benchmarks.md, "Chunk checksums").
CHECKSUM = Crc32cCodec()


@dataclass(frozen=True)
class FieldSpec:
    """One per-sample array: dtype and the shape of one sample."""

    name: str
    dtype: str
    sample_shape: tuple[int, ...]
    codec: BloscCodec | None
    fill_value: object


def group_name(spec: str, taken: set[str] | tuple = ()) -> str:
    """A zarr-safe group name for a split spec: `folder:/data/x[:10]` -> `folder_data_x_10`."""
    name = re.sub(r"[^A-Za-z0-9.\-]+", "_", spec).strip("_.") or "split"
    if name.startswith("__"):
        name = name.lstrip("_")
    candidate, suffix = name, 1
    while candidate in taken or candidate == "pca":
        suffix += 1
        candidate = f"{name}_{suffix}"
    return candidate


def feature_array_name(layer: str) -> str:
    """Layer names become array names; '/' would create nested groups, so it is replaced."""
    return re.sub(r"[/\\]+", "_", layer).strip("_.") or "layer"


def split_fields(resolution, labeled: bool, has_teacher: bool, feature_shapes: dict[str, tuple]) -> list[FieldSpec]:
    """The per-sample arrays of one split, in write order (`features` maps array name -> (C, h, w))."""
    height, width = resolution
    fields = [FieldSpec("image", "uint8", (height, width, 3), IMAGE_CODEC, 0)]
    if has_teacher:
        fields.append(FieldSpec("teacher", "float16", (height, width), FLOAT_CODEC, 0.0))
        fields.append(FieldSpec("teacher_ok", "bool", (), None, False))
        for array, shape in feature_shapes.items():
            fields.append(FieldSpec(f"features/{array}", "float16", tuple(shape), FEATURE_CODEC, 0.0))
    if labeled:
        fields.append(FieldSpec("gt", "float32", (height, width), FLOAT_CODEC, 0.0))
        fields.append(FieldSpec("valid", "bool", (height, width), MASK_CODEC, False))
    fields.append(FieldSpec("ids", "str", (), None, ""))
    fields.append(FieldSpec("readable", "bool", (), None, False))
    return fields


def shard_count(count: int, shard_size: int) -> int:
    return max(1, math.ceil(count / shard_size))


def shard_range(shard: int, count: int, shard_size: int) -> tuple[int, int]:
    """Sample range [start, stop) of `shard`."""
    start = shard * shard_size
    return start, min(count, start + shard_size)


def create_split_arrays(root: zarr.Group, group: str, count: int, shard_size: int, fields: list[FieldSpec]) -> None:
    """Create (or identically recreate) the arrays of one split group."""
    split = root.require_group(group)
    for field in fields:
        shape = (count, *field.sample_shape)
        with warnings.catch_warnings():
            # Variable-length strings are a zarr-python extension of the v3 spec; plain zarr reads them.
            warnings.simplefilter("ignore")
            if field.sample_shape:
                split.create_array(
                    field.name, shape=shape, dtype=field.dtype, chunks=(1, *field.sample_shape),
                    shards=(shard_size, *field.sample_shape), compressors=[field.codec, CHECKSUM],
                    fill_value=field.fill_value, overwrite=True,
                )
            else:
                split.create_array(
                    field.name, shape=shape, dtype=field.dtype if field.dtype != "str" else str,
                    chunks=(shard_size,), compressors=[SCALAR_CODEC, CHECKSUM], fill_value=field.fill_value,
                    overwrite=True,
                )
    split.create_array(
        "shard_done", shape=(shard_count(count, shard_size),), dtype="bool", chunks=(1,), fill_value=False,
        compressors=[SCALAR_CODEC, CHECKSUM], overwrite=True,
    )


def write_pca(root: zarr.Group, array: str, components: np.ndarray, mean: np.ndarray) -> None:
    pca = root.require_group(f"pca/{array}")
    for name, values in (("components", components), ("mean", mean)):
        out = pca.create_array(name, shape=values.shape, dtype="float32", chunks=values.shape, overwrite=True)
        out[...] = values.astype(np.float32)

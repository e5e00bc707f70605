"""Cache read speed: samples/s one training-loader worker gets from a kdcache store in shuffled order
(whole-shard blocks from `shuffled_blocks`, shuffled within each block) versus the same data stored as
one `.npz` per sample read in a random permutation. Also per-sample random `read(i, i+1)` from the store,
to show why blocks matter, and the peak memory each pattern allocates (tracemalloc).

The data: a store precomputed from JPEG photos-like images with a cheap fake teacher exposing two feature
layers (all fields a training run reads: image, teacher, teacher_ok, gt-less unlabeled split + features).

    python bench/cache_read.py [--images 512] [--resolution 240x320] [--shard-size 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # `helpers`: the test doubles the benches reuse

FIELDS = ["image", "teacher", "teacher_ok", "features"]


def build_store(work: Path, images: int, resolution, shard_size: int) -> str:
    from precompute import write_images
    from helpers.precompute_fakes import FakeTeacher

    from kdcache.precompute import PrecomputeConfig, precompute

    write_images(work / "images", images)
    return precompute(PrecomputeConfig(FakeTeacher(), [f"folder:{work / 'images'}"], str(work / "cache.zarr"),
                                       resolution=resolution, batch_size=32, shard_size=shard_size, workers=1))


def write_npz(split, folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for start, stop in split.shuffled_blocks(seed=0, epoch=0):
        data = split.read(start, stop, FIELDS)
        for offset in range(stop - start):
            path = folder / f"{start + offset:07d}.npz"
            np.savez(path, **{name.replace("/", "."): values[offset] for name, values in data.items()})
            paths.append(path)
    return sorted(paths)


def store_epoch(split, epoch: int) -> int:
    rng = np.random.default_rng(epoch)
    seen = 0
    for start, stop in split.shuffled_blocks(seed=0, epoch=epoch):
        data = split.read(start, stop, FIELDS)
        for offset in rng.permutation(stop - start):
            sample = {name: values[offset] for name, values in data.items()}
            seen += len(sample)
    return seen


def store_random_epoch(split, epoch: int, limit: int) -> int:
    seen = 0
    for index in np.random.default_rng(epoch).permutation(len(split))[:limit]:
        seen += len(split.read(int(index), int(index) + 1, FIELDS))
    return seen


def npz_epoch(paths: list[Path], epoch: int) -> int:
    seen = 0
    for index in np.random.default_rng(epoch).permutation(len(paths)):
        with np.load(paths[index]) as archive:
            seen += len({name: archive[name] for name in archive.files})
    return seen


def measure(patterns: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """{name: (samples/s, peak traced MiB)}: best of `rounds` interleaved passes (the first pass also warms
    the page cache), so every pattern sees the same load on a shared machine."""
    results = {name: (0.0, 0.0) for name in patterns}
    for _ in range(rounds):
        for name, (fn, count) in patterns.items():
            tracemalloc.start()
            start = time.perf_counter()
            fn()
            rate = count / (time.perf_counter() - start)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            results[name] = (max(results[name][0], rate), max(results[name][1], peak))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--resolution", default="240x320")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--random-samples", type=int, default=128, help="samples for the per-sample pattern")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes per pattern (best is kept)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    resolution = tuple(int(v) for v in args.resolution.split("x"))

    from kdcache.store import open_store

    work = Path(tempfile.mkdtemp(prefix="kdcache-bench-read-"))
    try:
        split = open_store(build_store(work, args.images, resolution, args.shard_size)).split(f"folder:{work / 'images'}")
        paths = write_npz(split, work / "npz")
        store_bytes = sum(f.stat().st_size for f in (work / "cache.zarr").rglob("*") if f.is_file())
        npz_bytes = sum(p.stat().st_size for p in paths)
        results = measure({
            "store": (lambda: store_epoch(split, 1), len(split)),
            "random": (lambda: store_random_epoch(split, 1, args.random_samples), args.random_samples),
            "npz": (lambda: npz_epoch(paths, 1), len(paths)),
        }, args.rounds)
        (store_rate, store_peak), (random_rate, random_peak), (npz_rate, npz_peak) = results.values()
        print(f"{len(split)} samples at {resolution[0]}x{resolution[1]}, fields {FIELDS}, shard size {args.shard_size}")
        print(f"on disk: store {store_bytes / 2**20:.1f} MiB, npz {npz_bytes / 2**20:.1f} MiB")
        print(f"store, shuffled whole-shard blocks: {store_rate:8.1f} samples/s, peak {store_peak:6.1f} MiB")
        print(f"store, per-sample random read:      {random_rate:8.1f} samples/s, peak {random_peak:6.1f} MiB")
        print(f"npz, one file per sample, shuffled:  {npz_rate:8.1f} samples/s, peak {npz_peak:6.1f} MiB")
        print(f"cache_read_vs_npz={store_rate / npz_rate:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

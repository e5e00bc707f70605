"""Cache read speed: samples/s one training-loader worker gets from a kdcache store in shuffled order
(whole-shard blocks from `shuffled_blocks`, shuffled within each block) versus the same data stored as
one `.npz` per sample read in a random permutation. Also per-sample random `read(i, i+1)` from the store,
to show why blocks matter, and the peak memory each pattern allocates (tracemalloc). The same store rewritten in
the layout before every chunk carried a CRC32C (`tests/helpers/old_layout.py`) is read in the same rounds: the
cost of checking every chunk's checksum on read (per-round ratios, so the spread is seen on a loaded machine).
`--baseline-ref REF` also reads that copy with the read path of git commit REF (its `kdcache/store/shardread.py`,
loaded beside today's): today's reads against those of an earlier kdcache.

The data: a store precomputed from JPEG photos-like images with a cheap fake teacher exposing two feature
layers (all fields a training run reads: image, teacher, teacher_ok, gt-less unlabeled split + features).

    python bench/cache_read.py [--images 512] [--resolution 240x320] [--shard-size 64] [--rounds 3]
                               [--baseline-ref REF]

With `--s3` (needs the dev extra: moto[server], s3fs) it measures a store in a bucket instead: the same store is
copied to moto's S3 server on 127.0.0.1, and each round reads one epoch from the local disk, one from S3 with an
empty read cache (the first epoch) and one from S3 with the read cache filled (every later epoch), interleaved;
every epoch opens the store anew, as a DataLoader worker does, and the same epochs are also read from a store kept
open (a run without workers). It prints the median and the range of each, and of the per-round ratios cached /
local (the target: >= 0.9).

    python bench/cache_read.py --s3 [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
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

    write_images(work / "images", images, (480, 640))  # photo-sized sources, as the recorded figures used
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


def store_epoch(split, epoch: int, read=None) -> int:
    """One shuffled pass; `read(split, start, stop)` (default: `split.read` of FIELDS) reads a block."""
    rng = np.random.default_rng(epoch)
    seen = 0
    for start, stop in split.shuffled_blocks(seed=0, epoch=epoch):
        data = read(split, start, stop) if read else split.read(start, stop, FIELDS)
        for offset in rng.permutation(stop - start):
            sample = {name: values[offset] for name, values in data.items()}
            seen += len(sample)
    return seen


def baseline_read(ref: str, work: Path):
    """A block reader as kdcache's commit `ref` read whole shards: its `shardread.read_shard`, zarr for the rest."""
    import importlib.util
    import subprocess

    source = subprocess.run(["git", "-C", str(HERE.parent), "show", f"{ref}:kdcache/store/shardread.py"],
                            check=True, capture_output=True, text=True).stdout
    path = work / "baseline_shardread.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_shardread", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def read(split, start, stop):
        fields = [f for f in split.fields if f in FIELDS or f.startswith("features/")]
        values = {f: module.read_shard(split.array(f), start // split.shard_size) for f in fields}
        return {f: split.array(f)[start:stop] if v is None else v for f, v in values.items()}

    return read


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


def measure(patterns: dict, rounds: int, rates: dict[str, list[tuple[float, float]]] | None = None
            ) -> dict[str, tuple[float, float]]:
    """{name: (samples/s, peak traced MiB)}: best of `rounds` interleaved passes (the first pass also warms
    the page cache), so every pattern sees the same load on a shared machine; the order is reversed every other
    round, so no pattern always follows the same one. `rates` collects every pass's (samples per wall second,
    samples per CPU second of this process)."""
    results = {name: (0.0, 0.0) for name in patterns}
    for round_ in range(rounds):
        for name, (fn, count) in list(patterns.items())[::-1 if round_ % 2 else 1]:
            tracemalloc.start()
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            rate = count / (time.perf_counter() - start)
            cpu_rate = count / max(time.process_time() - cpu, 1e-9)
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            results[name] = (max(results[name][0], rate), max(results[name][1], peak))
            if rates is not None:
                rates.setdefault(name, []).append((rate, cpu_rate))
    return results


def ratio_line(label: str, ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> str:
    """`label=best/best` and the per-round ratios (after the first round, which warms the page cache), wall and
    CPU: on a shared machine the spread says how far the figure can be trusted."""
    ratios = np.array(ours)[1:] / np.array(theirs)[1:]
    best = max(r for r, _ in ours) / max(r for r, _ in theirs)
    wall, cpu = ratios[:, 0], ratios[:, 1]
    return (f"{label}={best:.3f} (best of each; per round: wall median {np.median(wall):.3f}, range "
            f"{wall.min():.3f}-{wall.max():.3f}; CPU median {np.median(cpu):.3f}, "
            f"range {cpu.min():.3f}-{cpu.max():.3f})")


def s3_rounds(local_url: str, name: str, rounds: int, work: Path) -> dict[str, list[float]]:
    """Samples/s per round: local disk, S3 first epoch (empty read cache), S3 later epochs (filled read cache)."""
    import s3fs
    from helpers.s3_server import S3_ENV, new_bucket, start_server

    from kdcache.store import open_store
    from kdcache.store.backend import use_remote

    server, endpoint = start_server()
    os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": endpoint})
    try:
        bucket = new_bucket()
        s3fs.S3FileSystem().put(local_url, f"{bucket}/cache.zarr", recursive=True)
        url = f"s3://{bucket}/cache.zarr"

        def epoch(store_url: str, folder: Path | None, split=None) -> float:
            """One epoch; the store opened anew (as a loader worker does each epoch) unless `split` is given."""
            use_remote(url, {}, str(folder) if folder else None, 2**40)
            start = time.perf_counter()
            split = split or open_store(store_url).split(name)
            store_epoch(split, 1)
            return len(split) / (time.perf_counter() - start)

        epoch(url, work / "warm")  # fills the read cache the later epochs read
        kept = {"local": open_store(local_url).split(name), "s3": open_store(url).split(name)}  # kept open
        rates: dict[str, list[float]] = {label: [] for label in (
            "local", "s3 first epoch", "s3 cached", "local, kept open", "s3 cached, kept open")}
        for index in range(rounds):
            rates["local"].append(epoch(local_url, None))
            rates["s3 first epoch"].append(epoch(url, work / f"cold-{index}"))
            rates["s3 cached"].append(epoch(url, work / "warm"))
            rates["local, kept open"].append(epoch(local_url, None, kept["local"]))
            rates["s3 cached, kept open"].append(epoch(url, work / "warm", kept["s3"]))
            shutil.rmtree(work / f"cold-{index}", ignore_errors=True)
        return rates
    finally:
        server.stop()


def print_s3(rates: dict[str, list[float]]) -> None:
    for label, values in rates.items():
        print(f"{label:21s} {np.median(values):8.1f} samples/s (range {min(values):.1f} - {max(values):.1f})")
    for cached, local in (("s3 cached", "local"), ("s3 cached, kept open", "local, kept open")):
        ratios = [c / l for c, l in zip(rates[cached], rates[local])]
        print(f"{cached} / {local}: {np.median(ratios):.2f} (per-round range {min(ratios):.2f} - {max(ratios):.2f}, "
              f"{len(ratios)} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--resolution", default="240x320")
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--random-samples", type=int, default=128, help="samples for the per-sample pattern")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes per pattern (best is kept)")
    parser.add_argument("--baseline-ref", default=None, help="git commit whose read path also reads the copy "
                                                             "without chunk checksums")
    parser.add_argument("--s3", action="store_true", help="local disk vs S3 (moto on 127.0.0.1) with the read cache")
    args = parser.parse_args()
    torch.set_num_threads(1)
    resolution = tuple(int(v) for v in args.resolution.split("x"))

    from kdcache.store import open_store

    work = Path(tempfile.mkdtemp(prefix="kdcache-bench-read-"))
    try:
        from helpers.old_layout import drop_chunk_checksums

        spec = f"folder:{work / 'images'}"
        url = build_store(work, args.images, resolution, args.shard_size)
        split = open_store(url).split(spec)
        if args.s3:
            print(f"{len(split)} samples at {resolution[0]}x{resolution[1]}, fields {FIELDS}, shard size "
                  f"{args.shard_size}; one epoch per pattern and round, interleaved")
            print_s3(s3_rounds(url, split.name, args.rounds, work))
            return
        shutil.copytree(work / "cache.zarr", work / "old.zarr")
        old = open_store(drop_chunk_checksums(str(work / "old.zarr"))).split(spec)
        paths = write_npz(split, work / "npz")
        store_bytes = sum(f.stat().st_size for f in (work / "cache.zarr").rglob("*") if f.is_file())
        npz_bytes = sum(p.stat().st_size for p in paths)
        rates: dict[str, list[tuple[float, float]]] = {}
        patterns = {
            "store": (lambda: store_epoch(split, 1), len(split)),
            "old": (lambda: store_epoch(old, 1), len(old)),
            "random": (lambda: store_random_epoch(split, 1, args.random_samples), args.random_samples),
            "npz": (lambda: npz_epoch(paths, 1), len(paths)),
        }
        if args.baseline_ref:
            read = baseline_read(args.baseline_ref, work)
            patterns["baseline"] = (lambda: store_epoch(old, 1, read), len(old))
        results = measure(patterns, args.rounds, rates)
        (store_rate, store_peak), (old_rate, _), (random_rate, random_peak), (npz_rate, npz_peak) = [
            results[name] for name in ("store", "old", "random", "npz")]
        print(f"{len(split)} samples at {resolution[0]}x{resolution[1]}, fields {FIELDS}, shard size {args.shard_size}")
        print(f"on disk: store {store_bytes / 2**20:.1f} MiB, npz {npz_bytes / 2**20:.1f} MiB")
        print(f"store, shuffled whole-shard blocks: {store_rate:8.1f} samples/s, peak {store_peak:6.1f} MiB")
        print(f"  same, no chunk checksums (older):  {old_rate:8.1f} samples/s")
        if args.baseline_ref:
            print(f"  same, older, read as {args.baseline_ref} read it: {results['baseline'][0]:8.1f} samples/s")
        print(f"store, per-sample random read:      {random_rate:8.1f} samples/s, peak {random_peak:6.1f} MiB")
        print(f"npz, one file per sample, shuffled:  {npz_rate:8.1f} samples/s, peak {npz_peak:6.1f} MiB")
        print(f"cache_read_vs_npz={store_rate / npz_rate:.2f}")
        print(ratio_line("checksummed_vs_unchecked", rates["store"], rates["old"]))
        if args.baseline_ref:
            print(ratio_line(f"checksummed_vs_{args.baseline_ref}", rates["store"], rates["baseline"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

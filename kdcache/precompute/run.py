"""`precompute(...)`: run a teacher once over splits and stream everything into a kdcache store.

Built so that a GPU teacher is never kept waiting (docs/architecture.md, section 4):
1. the loader starts first: workers decode and resize every split of the run, in shard-aligned batches, while
   the teacher loads (and, for a new store, its first batches are the ones PCA is fitted on);
2. the batch loop (`stream.py`) launches batches ahead of the one it finishes, so the device always has work;
3. whole shards go to a pool of writer threads, several in flight (`store/writer.py`).

Resumable: shards whose `shard_done` flag is set are skipped, so rerunning the same command after a kill -9
continues where it stopped. `shard=(i, N)` processes fill disjoint shards (s % N == i); under torchrun the
shard defaults to (RANK, WORLD_SIZE) and the device to `cuda:LOCAL_RANK`. Two runs never write one store at
once (`store/lock.py`).
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np

from kdcache.console import log
from kdcache.devices import launch_env, resolve_device
from kdcache.errors import KdcacheError
from kdcache.precompute import store_plan as planning
from kdcache.precompute.features import default_grid
from kdcache.precompute.image_loader import ResizedSamples, RunSamples, make_loader, run_batches
from kdcache.precompute.stream import SplitRun, Stream
from kdcache.precompute.teacher_targets import FeaturePlan, TargetMaker
from kdcache.store import lock
from kdcache.store import manifest as mf
from kdcache.store.backend import remove_stale_partials
from kdcache.store.layout import shard_count, shard_range
from kdcache.store.reader import open_root
from kdcache.store.writer import ShardWriter, existing_manifest, wait_for_manifest


def resolve_teacher(teacher, device, precision: str):
    """A Teacher object, or None for the `none` teacher (images and GT only)."""
    if isinstance(teacher, str):
        from kdcache.teachers import create_teacher

        teacher = create_teacher(teacher, device=device, precision=precision)
    if teacher is None or getattr(teacher, "output_space", None) is None:
        return None  # `none` (NoTeacher): no teacher maps, no features
    return teacher


def resolve_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    """`--shard i/N`, or under torchrun (RANK, WORLD_SIZE), else the whole store."""
    if shard is not None:
        return int(shard[0]), int(shard[1])
    rank, world_size, _ = launch_env()
    return (rank, world_size) if world_size > 1 else (0, 1)


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def _resolve_layers(teacher, feature_layers) -> list[str]:
    if teacher is None or feature_layers in ("none", ()) or feature_layers == []:
        return []
    if feature_layers is None or feature_layers == "default":
        return list(teacher.default_feature_layers)
    layers = [feature_layers] if isinstance(feature_layers, str) else list(feature_layers)
    unknown = [layer for layer in layers if layer not in teacher.feature_layers]
    if unknown:
        raise KdcacheError(
            f"teacher '{teacher.name}' has no feature layer {unknown}: choose from {', '.join(teacher.feature_layers)}"
        )
    return layers


def _validate(resolution, batch_size, shard_size, shard) -> None:
    if len(resolution) != 2 or min(resolution) < 1:
        raise KdcacheError(f"bad resolution {resolution}: use HxW with positive sizes, e.g. 240x320")
    if batch_size < 1 or shard_size < 1:
        raise KdcacheError("--batch-size and --shard-size must be >= 1")
    if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise KdcacheError(f"bad --shard {shard[0]}/{shard[1]}: use i/N with 0 <= i < N")


def _mismatch(out: str, stored: dict, requested: dict) -> None:
    different = mf.mismatches(stored, requested)
    if different:
        label, old, new = different[0]
        raise KdcacheError(
            f"{out} was made with {label} {old!r} but this run asks for {new!r}: "
            "rerun with the store's options (`kdcache cache info` shows them) or choose a new --out"
        )


def _todo(out: str, manifest: dict | None, specs: list[str], counts: list[int], shard_size: int,
          shard: tuple[int, int]) -> dict[int, list[int]]:
    """Per split position: the shards this process still has to write (all of its own on a new store)."""
    todo = {}
    root = open_root(out) if manifest is not None else None
    for position, spec in enumerate(specs):
        entry = (manifest or {}).get("splits", {}).get(spec)
        if entry is not None:
            done = np.asarray(root[f"{entry['group']}/shard_done"][:], dtype=bool)
        else:
            done = np.zeros(shard_count(counts[position], shard_size), dtype=bool)
        todo[position] = [s for s in range(len(done)) if s % shard[1] == shard[0] and not done[s]]
    return todo


def precompute(
    teacher,
    splits,
    out: str,
    resolution: tuple[int, int] = (240, 320),
    batch_size: int = 16,
    device: str = "auto",
    precision: str = "fp32",
    feature_layers=None,
    feature_grid: tuple[int, int] | None = None,
    feature_budget: int | None = None,
    flip_tta: bool = False,
    shard: tuple[int, int] | None = None,
    workers: int | None = None,
    strict: bool | None = None,
    shard_size: int = 64,
    root=None,
    pca_fit_samples: int = planning.PCA_FIT_SAMPLES,
    writer_threads: int | None = None,
    split_options: dict | None = None,
) -> str:
    """Precompute teacher targets for `splits` into the store at `out` (path or fsspec URL); returns `out`.

    `teacher`: a registered name (`kdcache teachers`), a Teacher object, or "none" (images and GT only).
    `device`: "auto" (the GPU when there is one), "cpu", "cuda", "cuda:1", ...
    `feature_layers`: None/"default" = the teacher's defaults, "none" = no features, or a list of names.
    `strict`: stop on an unreadable sample (default: True for labeled splits, False for unlabeled ones).
    `workers`: decoding processes (default: cores - 1, at most 8); `writer_threads`: encoding threads.
    `split_options`: reader options for every split, e.g. `{"size": (96, 128)}` renders the synthetic world
    at the cache resolution instead of rendering larger and resizing; recorded in the manifest.
    """
    from kdcache.data import open_split

    out, resolution, shard = str(out), tuple(int(v) for v in resolution), resolve_shard(shard)
    _validate(resolution, batch_size, shard_size, shard)
    specs = list(dict.fromkeys(splits))
    if not specs:
        raise KdcacheError("no --split given: name at least one split, e.g. --split nyu-train")
    split_options = dict(split_options or {})
    datasets = {spec: open_split(spec, root=root, **split_options) for spec in specs}
    empty = [spec for spec, dataset in datasets.items() if len(dataset) == 0]
    if empty:
        raise KdcacheError(f"split {empty[0]} has no samples: check its path / slice, or leave it out")
    device = resolve_device(device)
    counts = [len(dataset) for dataset in datasets.values()]
    samples = RunSamples([ResizedSamples(d, resolution, bool(d.labeled)) for d in datasets.values()])

    # Decoding starts before the teacher loads; nothing is written to `out` until the teacher is loaded.
    todo = _todo(out, existing_manifest(out), specs, counts, shard_size, shard)
    batches = run_batches(todo, counts, shard_size, batch_size)
    pin = device.type == "cuda" and teacher != "none"
    workers = default_workers() if workers is None else workers
    loader = iter(make_loader(samples, batches, workers, pin)) if batches else iter(())
    try:
        model = resolve_teacher(teacher, device, precision)  # a missing teacher leaves nothing behind
        layers = _resolve_layers(model, feature_layers)
        grid = tuple(feature_grid) if feature_grid else default_grid(resolution)
        budget = int(feature_budget) if feature_budget else resolution[0] * resolution[1] * 3
        requested = planning.requested_manifest(
            model, precision, flip_tta, resolution, shard_size, datasets, root, layers, grid, budget
        )
        if split_options:  # absent when unused, so stores made without options keep matching
            requested["split_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in split_options.items()}
        maker = TargetMaker(model, FeaturePlan(layers, grid), flip_tta, device, precision) if model else None
        with lock.writing(out, shard):
            _write(out, requested, maker, samples, loader, todo, shard, batch_size, pca_fit_samples, writer_threads,
                   strict)
    finally:
        shutdown = getattr(loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    return out


def _write(out, requested, maker, samples, loader, todo, shard, batch_size, fit_samples, writer_threads,
           strict) -> None:
    """Open (or create) the store, then stream every batch into it; runs under the store's write locks."""
    specs, counts = list(requested["splits"]), [len(split) for split in samples.splits]
    shard_size = requested["shard_size"]
    existed = existing_manifest(out) is not None
    manifest, consumed = _open_or_create(out, requested, maker, samples, loader, todo, shard, batch_size, fit_samples)
    if maker is not None:
        maker.plan = planning.feature_plan(out, manifest)
    if existed and shard[1] == 1:
        remove_stale_partials(out)  # leftovers of a killed writer; unsafe while other writers run
    now = _todo(out, manifest, specs, counts, shard_size, shard)  # another run may have finished some meanwhile
    skip = {(position, s) for position, shards in todo.items() for s in shards if s not in set(now[position])}
    runs = []
    for position, spec in enumerate(specs):
        entry = manifest["splits"][spec]
        runs.append(SplitRun(spec, entry["group"], entry["count"], entry["labeled"] if strict is None else strict,
                             now[position], _samples_in(now[position], entry["count"], shard_size)))
    for run in runs:
        if not run.todo:
            log(f"{run.spec}: complete, nothing to do")
    if not any(run.todo for run in runs):
        return
    writer = ShardWriter(out, threads=writer_threads)
    stream = Stream(runs, shard_size, maker, writer)
    start = time.perf_counter()
    try:
        stream.run(itertools.chain(consumed, loader), skip)
    except BaseException:
        _close_quietly(writer)  # shards already handed over are completed and marked; the error wins
        raise
    writer.close()
    wall = time.perf_counter() - start
    busy = f"; teacher busy {stream.busy_share(wall):.0%} of it" if maker is not None else ""
    log(f"{stream.images} images in {wall:.1f} s ({stream.images / max(wall, 1e-9):.1f} img/s){busy}")


def _samples_in(shards: list[int], count: int, shard_size: int) -> int:
    return sum(stop - start for start, stop in (shard_range(s, count, shard_size) for s in shards))


def _close_quietly(writer: ShardWriter) -> None:
    try:
        writer.close()
    except BaseException:  # noqa: BLE001 - the original error is the one to report
        pass


def _open_or_create(out, requested, maker, samples, loader, todo, shard, batch_size, fit_samples):
    """(manifest, loader batches consumed by the feature fit) of the store at `out`, created if need be."""
    stored = existing_manifest(out)
    if stored is None and shard[0] != 0:
        stored = wait_for_manifest(out, shard)
    if stored is None:
        with lock.creating(out):
            stored = existing_manifest(out)  # a run with another --shard N may have just created it
            if stored is None:
                log(f"creating {out}")
                first = samples.splits[0]
                source = planning.fit_batches(loader, first, len(first), requested["shard_size"], batch_size,
                                              set(todo.get(0, [])))
                return planning.create_new_store(out, requested, maker, source, fit_samples)
    _mismatch(out, stored, requested)
    return stored, []

"""`precompute(...)`: run a teacher once over splits and stream everything into a kdcache store.

Built so that a GPU teacher is never kept waiting (docs/architecture.md, section 4):
1. the loader starts first: workers decode and resize every split of the run, in shard-aligned batches, while
   the teacher loads (and, for a new store, its first batches are the ones PCA is fitted on);
2. the batch loop (`stream.py`) launches batches ahead of the one it finishes, so the device always has work;
3. whole shards go to a pool of writer threads, several in flight (`store/writer.py`).

Resumable: shards whose `shard_done` flag is set are skipped, so rerunning the same command after a kill -9
continues where it stopped. Self-repairing: a rerun first reads every done shard of its splits whole and checks
every checksum (`kdcache.store.integrity`); a shard with a missing or damaged file loses its done flag and its
files, and is redone like one never written, so the store ends bit-identical to a clean run.
Extendable: a run naming splits an existing store lacks adds them, and the teacher runs on those only.
`shard=(i, N)` processes fill disjoint shards (s % N == i); under torchrun the shard defaults to
(RANK, WORLD_SIZE) and the device to `cuda:LOCAL_RANK`. Two runs never write one store at once (`store/lock.py`).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from kdcache.console import log, progress
from kdcache.devices import default_workers, launch_env, resolve_device
from kdcache.errors import KdcacheError
from kdcache.precompute import store_plan as planning
from kdcache.memory_budget import check_device, check_host
from kdcache.precompute.features import default_grid
from kdcache.precompute.memory_needs import precompute_needs
from kdcache.precompute.precompute_config import PrecomputeConfig
from kdcache.precompute.image_loader import ResizedSamples, RunSamples, make_loader, run_batches
from kdcache.precompute.stream import SplitRun, Stream
from kdcache.precompute.teacher_targets import FeaturePlan, TargetMaker
from kdcache.store import lock
from kdcache.store import manifest as mf
from kdcache.store.backend import remove_stale_partials, use_remote
from kdcache.store.integrity import check_split
from kdcache.store.layout import shard_count, shard_range
from kdcache.store.reader import CacheStore, StoredSplit
from kdcache.store.writer import ShardWriter, existing_manifest, undo_shards, wait_for_manifest


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


def _resolve_layers(teacher, feature_layers) -> list[str]:
    if teacher is None or feature_layers in ("none", ()) or feature_layers == []:
        return []
    if feature_layers == "default":
        return list(teacher.default_feature_layers)
    layers = [feature_layers] if isinstance(feature_layers, str) else list(feature_layers)
    unknown = [layer for layer in layers if layer not in teacher.feature_layers]
    if unknown:
        raise KdcacheError(
            f"teacher '{teacher.name}' has no feature layer {unknown}: choose from {', '.join(teacher.feature_layers)}"
        )
    return layers


def _mismatch(out: str, stored: dict, requested: dict) -> None:
    different = mf.mismatches(stored, requested)
    if different:
        label, old, new = different[0]
        raise KdcacheError(
            f"{out} was made with {label} {old!r} but this run asks for {new!r}: "
            "rerun with the store's options (`kdcache cache info` shows them) or choose a new --out"
        )


def _damaged(out: str, manifest: dict | None, specs: list[str], shard: tuple[int, int]) -> dict[str, list[int]]:
    """Per split group: the done shards of this process whose files are missing or fail a checksum (every file
    read whole, at disk speed)."""
    if manifest is None:
        return {}
    store, found = CacheStore(out, manifest), {}
    with progress(unit="img") as bar:
        for spec in (spec for spec in specs if spec in manifest["splits"]):
            split = store.split(spec)
            mine = [s for s in range(split.n_shards) if s % shard[1] == shard[0]]
            task = bar.add_task(f"check {spec}", total=len(split))
            report = check_split(split, "data", mine, advance=lambda samples, task=task: bar.advance(task, samples))
            if report.damage:
                more = f" and {len(report.damage) - 1} more" if len(report.damage) > 1 else ""
                log(f"{spec}: {len(report.damaged_shards)} damaged shard(s) ({report.damage[0]}{more}): redoing them")
                found[split.group] = report.damaged_shards
    return found


def _todo(out: str, manifest: dict | None, specs: list[str], counts: list[int], shard_size: int,
          shard: tuple[int, int], damaged: dict[str, list[int]] | None = None) -> dict[int, list[int]]:
    """Per split position: the shards this process still has to write (all of its own on a new store), the
    `damaged` ones (per group) included."""
    todo = {}
    for position, spec in enumerate(specs):
        entry = (manifest or {}).get("splits", {}).get(spec)
        if entry is not None:
            done = StoredSplit(out, spec, entry, manifest).done_flags()  # its metadata checked first
            done[(damaged or {}).get(entry["group"], [])] = False
        else:
            done = np.zeros(shard_count(counts[position], shard_size), dtype=bool)
        todo[position] = [s for s in range(len(done)) if s % shard[1] == shard[0] and not done[s]]
    return todo


def precompute(config: PrecomputeConfig | dict[str, Any]) -> str:
    """Precompute teacher targets for `config.splits` into the store at `config.out` (path or fsspec URL); returns
    `config.out`. `config`: a `PrecomputeConfig` (or a TOML-shaped dict of one), whose fields document each
    setting: e.g. `PrecomputeConfig("dpt-large", ["nyu-train"], "cache/dpt.zarr", device="cuda")`.
    """
    from kdcache.data import open_split

    config = config if isinstance(config, PrecomputeConfig) else PrecomputeConfig.from_dict(config)
    config.validate()
    use_remote(config.out, config.storage_options)
    out, resolution, shard = config.out, tuple(int(v) for v in config.resolution), resolve_shard(config.shard)
    if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):  # RANK / WORLD_SIZE of a torchrun launch
        raise KdcacheError(f"bad shard {shard[0]}/{shard[1]}: use i/N with 0 <= i < N")
    specs = list(dict.fromkeys(config.splits))
    if not specs:
        raise KdcacheError("no --split given: name at least one split, e.g. --split nyu-train")
    split_options, root = config.split_options, config.data_root
    datasets = {spec: open_split(spec, root=root, **split_options) for spec in specs}
    empty = [spec for spec, dataset in datasets.items() if len(dataset) == 0]
    if empty:
        raise KdcacheError(f"split {empty[0]} has no samples: check its path / slice, or leave it out")
    device = resolve_device(config.device)
    counts = [len(dataset) for dataset in datasets.values()]
    workers = default_workers("precompute") if config.workers is None else config.workers
    labeled = any(dataset.labeled for dataset in datasets.values())
    # Before the loader starts, the teacher loads or anything is written: no store is left stamped with a setting
    # this machine cannot hold.
    needs = precompute_needs(config, counts, labeled, workers, device)
    check_host(needs, device, "kdcache precompute")
    samples = RunSamples([ResizedSamples(d, resolution, bool(d.labeled)) for d in datasets.values()])

    # Decoding starts before the teacher loads; nothing is written to `out` until the teacher is loaded.
    stored = existing_manifest(out)
    if stored is not None:
        lock.refuse_if_written(out, shard)  # before reading the whole store for damage, not after
    damaged = _damaged(out, stored, specs, shard)
    todo = _todo(out, stored, specs, counts, config.shard_size, shard, damaged)
    batches = run_batches(todo, counts, config.shard_size, config.batch_size)
    pin = device.type == "cuda" and config.teacher != "none"
    loader = iter(make_loader(samples, batches, workers, pin)) if batches else iter(())
    try:
        model = resolve_teacher(config.teacher, device, config.precision)  # a missing teacher leaves nothing behind
        check_device(needs, device, "kdcache precompute")  # the GPU's memory left beside the teacher's weights
        layers = _resolve_layers(model, config.feature_layers)
        grid = tuple(config.feature_grid) if config.feature_grid else default_grid(resolution)
        budget = int(config.feature_budget) if config.feature_budget else resolution[0] * resolution[1] * 3
        requested = planning.requested_manifest(model, config.precision, config.flip_tta, resolution,
                                                config.shard_size, datasets, root, layers, grid, budget)
        if split_options:  # absent when unused, so stores made without options keep matching
            requested["split_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in split_options.items()}
        maker = (TargetMaker(model, FeaturePlan(layers, grid), config.flip_tta, device, config.precision)
                 if model else None)
        with lock.writing(out, shard) as held:
            _write(out, requested, maker, samples, loader, todo, damaged, shard, config, guard=held and held.check)
    finally:
        shutdown = getattr(loader, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
    return out


def _write(out, requested, maker, samples, loader, todo, damaged, shard, config: PrecomputeConfig,
           guard=None) -> None:
    """Open (or create) the store, clear the `damaged` shards, then stream every batch into it; runs under the
    store's write locks (`guard` raises once they are lost: an object store's lease)."""
    specs, counts = list(requested["splits"]), [len(split) for split in samples.splits]
    shard_size, strict = requested["shard_size"], config.strict
    existed = existing_manifest(out) is not None
    manifest, consumed = _open_or_create(out, requested, maker, samples, loader, todo, shard, config.batch_size,
                                         config.pca_fit_samples)
    if maker is not None:
        maker.plan = planning.feature_plan(out, manifest)
    if existed and shard[1] == 1:
        remove_stale_partials(out)  # leftovers of a killed writer; unsafe while other writers run
    for group, shards in damaged.items():
        undo_shards(out, group, shards)
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
    writer = ShardWriter(out, threads=config.writer_threads, guard=guard)
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
    if mf.added_splits(stored, requested):
        with lock.creating(out):  # a `--shard i/N` process beside this one may be adding them too
            stored = existing_manifest(out)
            added = mf.added_splits(stored, requested)
            stored = planning.add_splits(out, stored, requested)
        if added:
            log(f"adding {', '.join(added)} to {out}; its {len(stored['splits']) - len(added)} other split(s) are kept")
    return stored, []

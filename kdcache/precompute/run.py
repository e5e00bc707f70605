"""`precompute(...)`: run a teacher once over splits and stream everything into a kdcache store.

Pipeline: DataLoader workers decode and resize (shard-aligned batches) -> the teacher runs in the main
thread (autocast on GPU, fp32 on CPU) -> whole shards are queued to a background writer (bounded queue).
Memory holds at most one shard being assembled plus `max_pending` queued shards, whatever the split size.

Resumable: shards whose `shard_done` flag is set are skipped, so rerunning the same command after a
kill -9 continues where it stopped. `shard=(i, N)` processes fill disjoint shards (s % N == i).
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict

import numpy as np
import torch

from kdcache.console import log, progress
from kdcache.errors import KdcacheError
from kdcache.precompute import plan as planning
from kdcache.precompute.features import default_grid
from kdcache.precompute.loader import ResizedSamples, make_loader, shard_batches
from kdcache.precompute.targets import FeaturePlan, TargetMaker
from kdcache.store import manifest as mf
from kdcache.store.backend import remove_stale_partials
from kdcache.store.layout import shard_range
from kdcache.store.reader import _open_root
from kdcache.store.writer import ShardWriter, existing_manifest, wait_for_manifest

MAX_LOGGED_PROBLEMS = 20


def _resolve_teacher(teacher, device: str, precision: str):
    """A Teacher object, or None for the `none` teacher (images and GT only)."""
    if isinstance(teacher, str):
        from kdcache.teachers import create_teacher

        teacher = create_teacher(teacher, device=device, precision=precision)
    if teacher is None or getattr(teacher, "output_space", None) is None:
        return None  # `none` (NoTeacher): no teacher maps, no features
    return teacher


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


def _open_or_create(out, requested, maker, datasets, batch_size, shard, fit_samples) -> dict:
    stored = existing_manifest(out)
    if stored is None:
        if shard[0] != 0:
            stored = wait_for_manifest(out, shard)
        else:
            log(f"creating {out}")
            return planning.create_new_store(out, requested, maker, datasets, batch_size, fit_samples)
    different = mf.mismatches(stored, requested)
    if different:
        label, old, new = different[0]
        raise KdcacheError(
            f"{out} was made with {label} {old!r} but this run asks for {new!r}: "
            "rerun with the store's options (`kdcache cache info` shows them) or choose a new --out"
        )
    return stored


def precompute(
    teacher,
    splits,
    out: str,
    resolution: tuple[int, int] = (240, 320),
    batch_size: int = 16,
    device: str = "cpu",
    precision: str = "fp32",
    feature_layers=None,
    feature_grid: tuple[int, int] | None = None,
    feature_budget: int | None = None,
    flip_tta: bool = False,
    shard: tuple[int, int] = (0, 1),
    workers: int = 0,
    strict: bool | None = None,
    shard_size: int = 64,
    root=None,
    pca_fit_samples: int = planning.PCA_FIT_SAMPLES,
    max_pending: int = 2,
    split_options: dict | None = None,
) -> str:
    """Precompute teacher targets for `splits` into the store at `out` (path or fsspec URL); returns `out`.

    `teacher`: a registered name (`kdcache teachers`), a Teacher object, or "none" (images and GT only).
    `feature_layers`: None/"default" = the teacher's defaults, "none" = no features, or a list of names.
    `strict`: stop on an unreadable sample (default: True for labeled splits, False for unlabeled ones).
    `split_options`: reader options for every split, e.g. `{"size": (96, 128)}` renders the synthetic world
    at the cache resolution instead of rendering larger and resizing; recorded in the manifest.
    """
    from kdcache.data import open_split

    resolution = tuple(int(v) for v in resolution)
    shard = (int(shard[0]), int(shard[1]))
    _validate(resolution, batch_size, shard_size, shard)
    specs = list(dict.fromkeys(splits))
    if not specs:
        raise KdcacheError("no --split given: name at least one split, e.g. --split nyu-train")
    split_options = dict(split_options or {})
    datasets = {spec: open_split(spec, root=root, **split_options) for spec in specs}
    empty = [spec for spec, dataset in datasets.items() if len(dataset) == 0]
    if empty:
        raise KdcacheError(f"split {empty[0]} has no samples: check its path / slice, or leave it out")
    model = _resolve_teacher(teacher, device, precision)  # before touching `out`: a missing teacher leaves nothing
    layers = _resolve_layers(model, feature_layers)
    grid = tuple(feature_grid) if feature_grid else default_grid(resolution)
    budget = int(feature_budget) if feature_budget else resolution[0] * resolution[1] * 3
    requested = planning.requested_manifest(
        model, precision, flip_tta, resolution, shard_size, datasets, root, layers, grid, budget
    )
    if split_options:  # absent when unused, so stores made without options keep matching
        requested["split_options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in split_options.items()}
    maker = TargetMaker(model, FeaturePlan(layers, grid), flip_tta, device, precision) if model else None
    manifest = _open_or_create(str(out), requested, maker, datasets, batch_size, shard, pca_fit_samples)
    if maker is not None:
        maker.plan = planning.feature_plan(str(out), manifest)
    if shard[1] == 1:
        remove_stale_partials(str(out))  # leftovers of a killed writer; unsafe while other writers run

    writer = ShardWriter(str(out), max_pending=max_pending)
    try:
        for spec, dataset in datasets.items():
            _run_split(spec, dataset, manifest, maker, writer, batch_size, shard, workers, strict)
            if maker is not None:
                maker.prefilled.clear()  # fit-time outputs of shards another --shard process owns
    finally:
        writer.close()
    return str(out)


def _todo_shards(url: str, group: str, shard: tuple[int, int]) -> list[int]:
    done = np.asarray(_open_root(url)[f"{group}/shard_done"][:], dtype=bool)
    return [s for s in range(len(done)) if s % shard[1] == shard[0] and not done[s]]


def _run_split(spec, dataset, manifest, maker, writer, batch_size, shard, workers, strict) -> None:
    entry = manifest["splits"][spec]
    count, shard_size, group = entry["count"], manifest["shard_size"], entry["group"]
    todo = _todo_shards(writer.url, group, shard)
    if not todo:
        log(f"{spec}: complete, nothing to do")
        return
    strict = entry["labeled"] if strict is None else strict
    samples = ResizedSamples(dataset, manifest["resolution"], entry["labeled"])
    warm = _prefilled_batches(maker, spec, set(todo), shard_size)
    warm_indices = {tuple(batch["index"].tolist()) for batch in warm}
    batches = [b for b in shard_batches(todo, count, shard_size, batch_size) if tuple(b) not in warm_indices]
    # Start the workers now, so they decode ahead while the warm batches are written.
    loader = iter(make_loader(samples, batches, workers)) if batches else iter(())
    pending: dict[int, list[dict]] = defaultdict(list)
    stats = {"unreadable": 0, "teacher_bad": 0}
    total = sum(shard_range(s, count, shard_size)[1] - shard_range(s, count, shard_size)[0] for s in todo)
    with progress(unit="img") as bar:
        task = bar.add_task(spec, total=total)
        for batch in itertools.chain(warm, loader):  # warm batches are the first ones, so order is kept
            batch = _as_numpy(batch)
            record = _process_batch(spec, batch, maker, strict, stats)
            shard_index = int(batch["index"][0]) // shard_size
            pending[shard_index].append(record)
            start, stop = shard_range(shard_index, count, shard_size)
            if sum(len(r["ids"]) for r in pending[shard_index]) == stop - start:
                parts = pending.pop(shard_index)
                writer.submit(group, shard_index, start, {k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
            bar.advance(task, len(batch["index"]))
    log(f"{spec}: wrote {len(todo)} shards ({total} samples); unreadable {stats['unreadable']}, "
        f"teacher output not finite {stats['teacher_bad']}")


def _as_numpy(batch: dict) -> dict:
    return {key: value.numpy() if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def _prefilled_batches(maker, spec: str, todo: set, shard_size: int) -> list[dict]:
    """Batches decoded and run while fitting PCA that this process must write, in index order."""
    if maker is None:
        return []
    keys = sorted((k for k in maker.prefilled if k[0] == spec and k[1] // shard_size in todo), key=lambda k: k[1])
    return [maker.prefilled[k][0] for k in keys]


def _process_batch(spec: str, batch: dict, maker, strict: bool, stats: dict) -> dict:
    readable = batch["readable"]
    for position in np.flatnonzero(~readable):
        reason = batch["reason"][position]
        if strict:
            raise KdcacheError(f"{spec}: unreadable sample {reason}: fix or remove it, or pass --no-strict to skip it")
        _report(stats, "unreadable", f"{spec}: skipping unreadable sample {int(batch['index'][position])}: {reason}")
    record = {"image": batch["image"], "ids": np.asarray(batch["id"], dtype=str), "readable": readable}
    if "gt" in batch:
        record["gt"], record["valid"] = batch["gt"], batch["valid"]
    if maker is not None:
        outputs, problems = maker(batch["image"], readable, key=(spec, *batch["index"].tolist()))
        for position, reason in problems.items():
            _report(stats, "teacher_bad", f"{spec}: sample {batch['id'][position]!r} marked invalid: {reason}")
        record.update(outputs)
    return record


def _report(stats: dict, key: str, message: str) -> None:
    stats[key] += 1
    if stats[key] <= MAX_LOGGED_PROBLEMS:
        log(f"[yellow]warning:[/] {message}")
    elif stats[key] == MAX_LOGGED_PROBLEMS + 1:
        log(f"[yellow]warning:[/] more {key} samples; only counts are reported from now on")


def default_workers() -> int:
    return max(0, min(8, (os.cpu_count() or 1) - 1))

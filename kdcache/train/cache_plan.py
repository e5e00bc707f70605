"""Check a cache against a training config and decide what each source must read.

Training never loads the teacher: everything it needs (teacher output space, resolution, which splits
have GT, which feature layers and channel counts) comes from the store's manifest. A cache made for
something else is refused here, with one line per problem, before any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kdcache.errors import KdcacheError
from kdcache.memory_budget import Need
from kdcache.train.train_config import TrainConfig, source_counts
from kdcache.train.loader import PREFETCH, LoaderPlan, SourcePlan
from kdcache.losses.loss_registry import loss_targets


@dataclass
class CacheInfo:
    url: str
    manifest: dict[str, Any]
    resolution: tuple[int, int]
    teacher: dict[str, Any] | None  # manifest teacher entry; None for a `none`-teacher cache
    split_sizes: dict[str, int]  # source name -> samples
    source_space: dict[str, str | None]  # source name -> GT space, None when unlabeled
    feature_channels: dict[str, int] = field(default_factory=dict)  # stored array name -> channels
    feature_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    identity: str = ""  # the store's identity for the splits the run reads (`CacheStore.identity`)

    @property
    def teacher_space(self) -> str | None:
        return self.teacher.get("output_space") if self.teacher else None


def read_splits(config: TrainConfig) -> list[str]:
    """The cache splits a run reads: its sources, then its validation split."""
    return list(config.sources.values()) + ([config.val] if config.val else [])


def reach_cache(config: TrainConfig) -> None:
    """Reach a remote cache with the run's storage options, through the local read cache (none with `off`), so
    that epochs after the first read the local disk."""
    from kdcache.store.backend import use_remote
    from kdcache.store.readcache import default_folder

    folder = None if config.read_cache == "off" else (config.read_cache or default_folder())
    use_remote(config.cache, config.storage_options, folder, int(config.read_cache_gib * 2**30))


def inspect_cache(config: TrainConfig) -> CacheInfo:
    """Open the store, refuse a mismatching one, and summarise what training needs from it."""
    from kdcache.store import open_store

    reach_cache(config)  # first: every later open of the store (loader workers included) reaches it this way
    store = open_store(config.cache)
    targets = {t for v in config.variants for name in v.loss for t in loss_targets(name)}
    splits = read_splits(config)
    wants_features = "features" in targets
    requested_layers = list(config.feature_layers or []) if wants_features else []
    store.require(splits=splits, resolution=config.resolution, features=requested_layers)
    manifest = store.manifest
    teacher = manifest.get("teacher")
    if teacher and teacher.get("name") == "none":
        teacher = None
    if teacher is None:
        _drop_default_distillation(config)
        targets = {t for v in config.variants for name in v.loss for t in loss_targets(name)}
    if teacher is None and targets & {"teacher", "features"}:
        users = [v.name for v in config.variants if any(loss_targets(n) & {"teacher", "features"} for n in v.loss)]
        raise KdcacheError(
            f"cache {config.cache} was made with no teacher but variant(s) {users} use a distillation loss: "
            "train them in gt-only mode or precompute a cache with a teacher"
        )
    if wants_features and not manifest.get("features"):
        raise KdcacheError(
            f"a feature loss is requested but cache {config.cache} stores no teacher features: "
            "drop the feature loss or re-run precompute with --features default"
        )
    info = CacheInfo(
        url=config.cache,
        manifest=manifest,
        resolution=tuple(manifest["resolution"]),
        teacher=teacher,
        split_sizes={s: len(store.split(spec)) for s, spec in config.sources.items()},
        source_space={s: _space(store.split(spec)) for s, spec in config.sources.items()},
        identity=store.identity(splits),
    )
    if wants_features:
        _read_feature_shapes(store, config, info)
    _check_gt_sources(config, info)
    _check_sizes(config, info)
    if config.val and not store.split(config.val).labeled:
        raise KdcacheError(f"--val {config.val} has no ground truth: pick a labeled split of the cache")
    return info


def _drop_default_distillation(config: TrainConfig) -> None:
    """Variants that did not choose their losses train on GT alone from a teacher-less cache."""
    for variant in config.variants:
        if variant.default_loss:
            variant.loss = {n: w for n, w in variant.loss.items() if not loss_targets(n) & {"teacher", "features"}}
            if not variant.loss:
                raise KdcacheError(
                    f"variant '{variant.name}' has no labeled source and the cache has no teacher: nothing to "
                    "learn from; pass --labeled SPLIT or use a cache made with a teacher"
                )


def _space(split) -> str | None:
    return split.space if split.labeled else None


def _stored_layers(store) -> list[str]:
    features = store.manifest.get("features") or {}
    return list(features.get("layers") or [])


def _read_feature_shapes(store, config: TrainConfig, info: CacheInfo) -> None:
    """(C, h, w) of every cached layer, read from one stored sample (PCA-reduced layers keep k channels)."""
    split = store.split(next(iter(config.sources.values())))
    for layer in config.feature_layers or _stored_layers(store):
        sample = split.read(0, 1, [f"features/{layer}"])[f"features/{layer}"]
        info.feature_shapes[layer] = tuple(int(d) for d in sample.shape[1:])
        info.feature_channels[layer] = int(sample.shape[1])


def _check_gt_sources(config: TrainConfig, info: CacheInfo) -> None:
    for variant in config.variants:
        if not any(loss_targets(n) & {"gt"} for n in variant.loss):
            continue
        if not any(info.source_space.get(s) for s in variant.sources):
            raise KdcacheError(
                f"variant '{variant.name}' has a ground-truth loss but none of its sources {variant.sources} "
                "is labeled: add the labeled source or use a distillation-only mode (kd-aux-only)"
            )


def _check_sizes(config: TrainConfig, info: CacheInfo) -> None:
    for source, size in info.split_sizes.items():
        if size == 0 and config.mix.get(source, 0) > 0:
            raise KdcacheError(f"source '{source}' ({config.sources[source]}) is empty in the cache: drop it")


def steps_per_epoch(config: TrainConfig, info: CacheInfo, world_size: int) -> int:
    """An epoch is one pass over the primary source (labeled, or aux in aux-only runs) across all ranks."""
    primary = config.primary_source
    per_step = source_counts(config)[primary] * world_size
    return max(1, info.split_sizes[primary] // per_step)


def total_steps(config: TrainConfig, per_epoch: int) -> int:
    """The run's length: `steps` when set, else `epochs` epochs."""
    return config.steps or config.epochs * per_epoch


def loader_plan(config: TrainConfig, info: CacheInfo, rank: int, world_size: int, lanes: int) -> LoaderPlan:
    """Fields each source reads: only what some variant training on that source can use."""
    counts = source_counts(config)
    sources = []
    for name, spec in config.sources.items():
        if counts.get(name, 0) == 0:
            continue
        users = [v for v in config.variants if name in v.sources]
        targets = {t for v in users for n in v.loss for t in loss_targets(n)}
        fields = ["image", "readable"]
        if info.teacher and targets & {"teacher", "features"}:
            fields += ["teacher", "teacher_ok"]
        if info.source_space[name] and "gt" in targets:
            fields += ["gt", "valid"]
        if "features" in targets:
            fields += [f"features/{a}" for a in info.feature_shapes]
        sources.append(SourcePlan(name, spec, counts[name], fields, gt_metric=info.source_space[name] == "depth",
                                  size=info.split_sizes[name]))
    return LoaderPlan(
        store_url=config.cache, sources=sources, resolution=info.resolution,
        feature_shapes={a: s for a, s in info.feature_shapes.items()},
        teacher_metric=info.teacher_space == "depth", seed=config.seed, rank=rank, world_size=world_size,
        lanes=lanes, window_blocks=config.window_blocks, augment=config.augment,
    )


# Bytes per pixel of each field as stored (what a loader worker reads) and as a float32 batch tensor.
_STORED = {"image": 3, "teacher": 2, "gt": 4, "valid": 1}
_BATCH = {"image": 12, "teacher": 4, "gt": 4, "valid": 1}


def memory_needs(config: TrainConfig, plan: LoaderPlan, shard_size: int, workers: int, device) -> list[Need]:
    """What a run holds at once (`kdcache.memory_budget`): each lane's shuffle window of stored blocks, the batches
    the loader workers prepare ahead (none with `workers` 0: the main process makes one at a time), and the batch
    on the device. A lower bound: the students' activations come on top."""
    px = plan.resolution[0] * plan.resolution[1]
    hw = f"{plan.resolution[0]}x{plan.resolution[1]}"

    def sample_bytes(fields, per_pixel: dict[str, int], feature_item: int) -> int:
        total = 0
        for name in fields:
            if name.startswith("features/"):
                channels, height, width = plan.feature_shapes[name.split("/", 1)[1]]
                total += channels * height * width * feature_item
            else:
                total += per_pixel.get(name, 0) * px
        return total

    window = plan.window_blocks * shard_size
    stored = sum(sample_bytes(s.fields, _STORED, 2) for s in plan.sources)
    batch = sum(s.count * sample_bytes(s.fields, _BATCH, 4) for s in plan.sources)
    ahead = workers * PREFETCH + 1  # the workers' batches ahead and the one handed over
    return [
        Need(f"a batch of {config.batch_size} at {hw} on {device}", batch, "--batch-size", on_device=True),
        Need(f"the loader: {plan.lanes} lane(s) x a window of {window} samples per source at {hw}",
             plan.lanes * window * stored, "--workers"),
        Need(f"the loader: {ahead} batch(es) of {config.batch_size} at {hw}", ahead * batch,
             "--batch-size (or --workers)"),
    ]

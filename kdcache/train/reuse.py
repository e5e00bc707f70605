"""Which variants of a train config are already trained: a finished run is kept when nothing that shapes it changed.

When an experiment is edited (a `kdcache demo` row added, a variant's loss changed), the variants whose training
did not change keep their finished runs and only the others train. A variant's run counts as finished for a
config only when
1. its `last` checkpoint is at the config's final step and carries the fingerprint this config gives the variant
   (the one `--resume` checks: the cache's identity, sources, mix, batch, seed, augmentation, the variant itself,
   the step count), so a cache rebuilt with another teacher, other options or other split sizes forces a retrain,
   wherever it lives (a remote cache too) and whatever its files' times say;
2. its config.json agrees with this config on every setting that shapes what is learned: all of them except
   where the run is written, how fast it runs and how it is logged (`NOT_LEARNED`);
3. it finished after the cache's splits it reads were created, so a cache rebuilt since with the same identity
   (the same settings over source files that may have changed) forces a retrain too, while splits added to the
   cache since (`kdcache precompute --split NEW`) change neither the identity nor those dates.
A run that passes 1 and 2 but stopped early is `partial`: it can be resumed.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from kdcache import __version__
from kdcache.store import manifest as mf
from kdcache.train import checkpointing as ckpt
from kdcache.train.cache_plan import CacheInfo, inspect_cache, read_splits, steps_per_epoch, total_steps
from kdcache.train.train_config import TrainConfig, VariantConfig, config_json, variant_fingerprint
from kdcache.train.variant import output_space

# config.json keys that change where, how fast or how verbosely a run goes, not what it learns. `encoder_weights`
# (the weights file a run started from) follows from the variant's `pretrained`, which is compared: a run that asks
# for ImageNet weights either loads them or is refused.
NOT_LEARNED = frozenset({"out", "variants", "device", "workers", "log_every", "checkpoint_every", "resume",
                         "overwrite", "progress", "epochs", "steps", "kdcache_version", "encoder_weights",
                         "torch_threads"})
FINISHED, PARTIAL, UNTRAINED = "finished", "partial", "untrained"


def run_extra(config: TrainConfig, info: CacheInfo, variant: VariantConfig, world_size: int) -> dict[str, Any]:
    """The facts a run adds to its config.json (the cache's teacher, the step count, the output space)."""
    per_epoch = steps_per_epoch(config, info, world_size)
    # torch_threads: a run with 1 and one with 2 threads round apart from the second step on (docs/results.md)
    return {"kdcache_version": __version__, "torch_threads": torch.get_num_threads(), "teacher": info.teacher,
            "cache_identity": info.identity, "resolution": info.resolution,
            "steps_per_epoch": per_epoch, "total_steps": total_steps(config, per_epoch),
            "world_size": world_size,
            "output_space": output_space(variant, info.source_space, info.teacher_space)}


def variant_status(config: TrainConfig, world_size: int = 1) -> dict[str, str]:
    """Variant name -> FINISHED, PARTIAL or UNTRAINED for the runs already in `config.out`."""
    info = inspect_cache(config)
    splits_written = _splits_written(config, info)
    return {v.name: _status(config, info, v, world_size, splits_written) for v in config.variants}


def _status(config: TrainConfig, info: CacheInfo, variant: VariantConfig, world_size: int,
            splits_written: float | None) -> str:
    directory = config.variant_dir(variant)
    checkpoint = ckpt.find_resume(directory)
    if checkpoint is None or not (directory / "config.json").is_file():
        return UNTRAINED
    progress = ckpt.read_progress(checkpoint)  # a pickle or another version's state: refused, never overwritten
    try:
        recorded = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return UNTRAINED  # a config.json cut short: its run is not one to keep
    extra = run_extra(config, info, variant, world_size)
    total = extra["total_steps"]
    if progress["fingerprint"] != variant_fingerprint(config, variant, total, world_size, info.identity):
        return UNTRAINED
    wanted = json.loads(config_json(config, variant, extra))
    if splits_written is None or (checkpoint / ckpt.STATE_JSON).stat().st_mtime <= splits_written:
        return UNTRAINED  # a cache rebuilt since it finished (other teacher targets), or of unknown age
    if _learned(recorded) != _learned(wanted):
        return UNTRAINED
    return FINISHED if progress["step"] >= total else PARTIAL


def _learned(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in NOT_LEARNED}


def _splits_written(config: TrainConfig, info: CacheInfo) -> float | None:
    """When the newest of the split groups the run reads was written (a group's zarr.json is written once, when its
    split is created: a rebuilt store recreates them all, a split added since is not read); None for a remote cache,
    whose age is unknown, so nothing counts as finished."""
    groups = [Path(config.cache) / mf.split_entry(info.manifest, spec)[1]["group"] / "zarr.json"
              for spec in read_splits(config)]
    if not all(group.is_file() for group in groups):
        return None
    return max(group.stat().st_mtime for group in groups)


def only(config: TrainConfig, names: list[str]) -> TrainConfig:
    """`config` restricted to the variants `names`, each still trained into the folder it has in `config`."""
    kept = [v for v in config.variants if v.name in names]
    out = config.variant_dir(kept[0]) if len(kept) == 1 else Path(config.out)
    return replace(config, variants=kept, out=str(out))

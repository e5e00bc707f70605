"""Stage 2: train many small students from a teacher cache, never loading the teacher.

`train(config)` takes a `TrainConfig`, a TOML-shaped dict (see configs/train-sweep.toml) or the path of
a TOML file, trains every variant in one pass over the cache and returns one `VariantResult` per variant
(run dir, best validation AbsRel, steps, wall time). Modules, in reading order: modes and train_config (the
settings) -> cache_plan -> augment -> loader -> variant -> loop (with checkpointing, curves, validate,
distributed).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kdcache.train.modes import MODES
from kdcache.train.train_config import TrainConfig, VariantConfig

if TYPE_CHECKING:
    from kdcache.train.loop import VariantResult

__all__ = ["train", "TrainConfig", "VariantConfig", "VariantResult", "MODES"]


def train(config: TrainConfig | dict[str, Any] | str | os.PathLike) -> list["VariantResult"]:
    """Train every variant of `config` in one pass; returns per-variant results (rank 0's view under DDP)."""
    from kdcache.train.loop import train_config

    if isinstance(config, (str, os.PathLike)):
        config = TrainConfig.from_toml(config)
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    return train_config(config)


def __getattr__(name: str):
    if name == "VariantResult":
        from kdcache.train.loop import VariantResult

        return VariantResult
    raise AttributeError(name)

"""Stage 2: train many small students from a teacher cache, never loading the teacher.

`train(config)` takes a `TrainConfig`, a TOML-shaped dict (see configs/train-sweep.toml) or the path of
a TOML file, trains every variant in one pass over the cache and returns one `VariantResult` per variant
(run dir, best validation AbsRel, steps, wall time). Modules, in reading order: config -> cache_plan ->
augment -> loader -> variant -> loop (with checkpointing, curves, validate, distributed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcache.train.config import MODES, TrainConfig, VariantConfig, config_from_dict, load_toml

if TYPE_CHECKING:
    from kdcache.train.loop import VariantResult

__all__ = ["train", "TrainConfig", "VariantConfig", "VariantResult", "MODES", "config_from_dict", "load_toml"]


def train(config: TrainConfig | dict[str, Any] | str | os.PathLike) -> list["VariantResult"]:
    """Train every variant of `config` in one pass; returns per-variant results (rank 0's view under DDP)."""
    from kdcache.train.loop import train_config

    if isinstance(config, (str, os.PathLike)):
        config = config_from_dict(load_toml(Path(config)))
    elif isinstance(config, dict):
        config = config_from_dict(config)
    return train_config(config)


def __getattr__(name: str):
    if name == "VariantResult":
        from kdcache.train.loop import VariantResult

        return VariantResult
    raise AttributeError(name)

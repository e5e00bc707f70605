"""The memory a precompute run holds at once, from its settings alone (`kdcache.memory_budget`), so that a setting
this machine cannot hold is refused before the loader starts, the teacher loads or the store is created.

Counted per sample at the cache resolution H x W (px = H * W) and a feature grid gh x gw, with the channels of
a layer counted as one (they are known only once the teacher has run: still a lower bound):
- the loader: each worker decodes `PREFETCH` batches ahead, an image (3 px bytes) plus, for labeled splits, GT
  and its mask (5 px);
- the teacher: `LOOKAHEAD + 1` batches on the device, the float32 input (12 px) and output (4 px, twice with
  flip-TTA) and the pooled float32 features (4 bytes a cell);
- the writer: a shard being assembled plus the shards in flight (`max(2, threads)`), each held stored (image,
  float16 teacher, GT, mask, float16 features) and once more while it is encoded.
"""

from __future__ import annotations

import torch

from kdcache.memory_budget import Need
from kdcache.precompute.features import default_grid
from kdcache.precompute.image_loader import PREFETCH
from kdcache.precompute.precompute_config import PrecomputeConfig
from kdcache.precompute.stream import LOOKAHEAD
from kdcache.store.writer import default_writer_threads


def precompute_needs(config: PrecomputeConfig, counts: list[int], labeled: bool, workers: int,
                     device: torch.device) -> list[Need]:
    height, width = config.resolution
    px, hw = height * width, f"{height}x{width}"
    largest = max(counts)
    batch = min(config.batch_size, config.shard_size, largest)  # batches never straddle shards or splits
    shard = min(config.shard_size, largest)
    teacher = config.teacher != "none"
    layers = 0 if not teacher or config.feature_layers == "none" else (
        1 if isinstance(config.feature_layers, str) else len(config.feature_layers))
    grid = tuple(config.feature_grid) if config.feature_grid else default_grid((height, width))
    cells = layers * grid[0] * grid[1]
    decoded = 3 * px + (5 * px if labeled else 0)
    threads = config.writer_threads or default_writer_threads()
    held = (max(2, threads) + 1) * shard * 2  # samples the writer holds, counted twice while encoded
    needs = [
        Need(f"the loader: {max(1, workers)} worker(s) x {PREFETCH if workers else 1} batches of {batch} images at "
             f"{hw}", max(1, workers) * (PREFETCH if workers else 1) * batch * decoded,
             "--resolution (or --batch-size, --workers)"),
        Need(f"the writer: {max(2, threads) + 1} shards of {shard} samples at {hw}, held twice while encoded",
             held * (decoded + (2 * px if teacher else 0)), "--resolution (or --shard-size, --writer-threads)"),
    ]
    if teacher:
        in_flight = LOOKAHEAD + 1
        maps = 12 * px + 4 * px * (2 if config.flip_tta else 1)
        needs.append(Need(f"the teacher: {in_flight} batches of {batch} images at {hw} on {device}",
                          in_flight * batch * maps, "--resolution (or --batch-size)", on_device=True))
    if cells:
        grid_text = f"{layers} layer(s) at grid {grid[0]}x{grid[1]}"
        needs.append(Need(f"pooled features: {in_flight} batches of {batch} x {grid_text}",
                          in_flight * batch * cells * 4, "--feature-grid (or --batch-size)", on_device=True))
        needs.append(Need(f"the writer's features: {max(2, threads) + 1} shards of {shard} x {grid_text}",
                          held * cells * 2, "--feature-grid (or --shard-size, --writer-threads)"))
    return needs

"""Precompute: run a teacher once over splits into a kdcache store; verify a store against its teacher.

    >>> from kdcache.precompute import precompute
    >>> precompute("dpt-large", ["nyu-train", "folder:/data/unlabeled"], "cache/dpt-large.zarr",
    ...            resolution=(240, 320), batch_size=16, device="cuda", precision="fp16")

Modules: resize (source -> cache resolution), image_loader (decoding workers, shard-aligned batches),
teacher_targets (teacher forward, flip-TTA, checks), features (pooling, budget, PCA), store_plan (store creation),
device and stream (batches launched ahead on the teacher's device), run (the pipeline), verify
(`kdcache cache verify`).
"""

from kdcache.precompute.run import default_workers, precompute
from kdcache.precompute.verify import VerifyReport, verify_store

__all__ = ["VerifyReport", "default_workers", "precompute", "verify_store"]

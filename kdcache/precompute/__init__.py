"""Precompute: run a teacher once over splits into a kdcache store; verify a store against its teacher.

    >>> from kdcache.precompute import PrecomputeConfig, precompute
    >>> precompute(PrecomputeConfig("dpt-large", ["nyu-train", "folder:/data/unlabeled"], "cache/dpt-large.zarr",
    ...                             resolution=(240, 320), batch_size=16, device="cuda", precision="fp16"))

Modules: precompute_config (the settings), resize (source -> cache resolution), image_loader (decoding workers,
shard-aligned batches), teacher_targets (teacher forward, flip-TTA, checks), features (pooling, budget, PCA),
store_plan (store creation), device and stream (batches launched ahead on the teacher's device), run (the
pipeline), verify (`kdcache cache verify`).

`PrecomputeConfig` imports nothing heavy (the CLI reads it when it starts); the rest loads on first use.
"""

from kdcache.precompute.precompute_config import PrecomputeConfig

__all__ = ["PrecomputeConfig", "VerifyReport", "precompute", "verify_store"]


def __getattr__(name: str):
    if name == "precompute":
        from kdcache.precompute.run import precompute

        return precompute
    if name in ("VerifyReport", "verify_store"):
        from kdcache.precompute import verify

        return getattr(verify, name)
    raise AttributeError(f"module 'kdcache.precompute' has no attribute {name!r}")

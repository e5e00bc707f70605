"""Test doubles and fixtures shared by the tests and the bench scripts; no tests live here.

`pyproject.toml` puts `tests/` on pytest's `pythonpath`, so tests import `helpers.<module>`; bench scripts and the
subprocesses tests start add `tests/` to their path the same way.

- `data_fixtures`: tiny files in the exact on-disk formats of NYU, KITTI, HR-WSI and image folders.
- `tiny_models`: random-weight Hugging Face DPT / Depth Anything models saved with `save_pretrained`.
- `eval_fixtures`: an in-memory labeled split and a saved tiny student for eval / infer / export.
- `precompute_fakes`: a fake teacher and small registered splits; `python -m helpers.precompute_fakes` runs a
  precompute with them (kill -9 and concurrent-shard tests).
- `train_support`: a tiny store written with the real store writer, and the tiny student trained on it.
- `offline_hub`: an unreachable hub (a blackhole HF_ENDPOINT) and timm weights laid out in a local HF cache.
- `small_disks`: runs one command against a read-only and a full tmpfs (inside `unshare -rm`).
"""

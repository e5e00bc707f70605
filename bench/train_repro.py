"""Does a student train bit for bit the same under two commits or two thread counts? A few steps, compared.

    # one run: the demo's gt-only row at `small`'s settings (MobileViT-XXS + mini-DPT, 64x96, batch 16, lr 2e-3,
    # SILog, seed 0, 2 loader workers) for STEPS steps on a store of 480 + 48 rooms that this code precomputes
    nice -n 10 python bench/train_repro.py run OUT [--steps 20]
    # another commit: a `git worktree` of it on PYTHONPATH (its own store, so its precompute is compared too)
    PYTHONPATH=/path/to/old-worktree python bench/train_repro.py run OUT_OLD
    OMP_NUM_THREADS=1 python bench/train_repro.py run OUT_1T --store OUT/store.zarr
    python bench/train_repro.py compare OUT OUT_OLD   # per-step losses, stores and weights; exit 1 if they differ

The runs call the library (`precompute`, `train`) as old commits have it, without their CLI, so any commit since
the demo's `small` experiment can be measured (docs/results.md, scale `small`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

TRAIN, VAL = "synth-train[:480]", "synth-test[-48:]"
STORE_ARRAYS = ("image", "gt", "valid", "teacher", "ids")


def make_store(store: Path) -> None:
    from kdcache.precompute import precompute

    options = {"resolution": (64, 96), "batch_size": 32, "shard_size": 64}
    try:
        from kdcache.precompute.precompute_config import PrecomputeConfig
    except ImportError:  # before issue 13 precompute took keyword arguments
        precompute("none", [TRAIN, VAL], str(store), **options)
    else:
        precompute(PrecomputeConfig("none", [TRAIN, VAL], str(store), **options))


def train_gt_only(store: Path, run: Path, steps: int) -> None:
    from kdcache.train import train

    train({"cache": str(store), "out": str(run), "val": VAL, "steps": steps, "batch_size": 16, "lr": 2e-3,
           "resolution": [64, 96], "sources": {"labeled": TRAIN}, "seed": 0, "workers": 2, "overwrite": True,
           "log_every": 1, "variant": [{"name": "gt-only", "student": "mobilevit-xxs", "sources": ["labeled"],
                                        "loss": {"silog": 1.0}, "seed": 0}]})


def run(out: Path, steps: int, store: Path | None) -> None:
    import kdcache
    import torch

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if store is None:
        store = out / "store.zarr"
        make_store(store)
    train_gt_only(store, out / "run", steps)
    facts = {"kdcache": str(Path(kdcache.__file__).parent), "threads": torch.get_num_threads(), "steps": steps,
             "store": str(store), "seconds": round(time.perf_counter() - started, 1)}
    (out / "facts.json").write_text(json.dumps(facts, indent=2))
    print(json.dumps(facts))


def losses(out: Path) -> dict[int, float]:
    rows = map(json.loads, (out / "run" / "metrics.jsonl").read_text().splitlines())
    return {row["step"]: row["loss"] for row in rows if row["kind"] == "train"}


def weight_distance(a: Path, b: Path) -> tuple[bool, float]:
    """(bit-identical?, relative L2 distance of the learned tensors; running statistics left out)."""
    import torch
    from safetensors.torch import load_file

    wa, wb = (load_file(p / "run" / "checkpoints" / "last" / "model.safetensors") for p in (a, b))
    same = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    learned = [k for k in wa if wa[k].is_floating_point() and "running" not in k]
    gap = sum(float((wa[k].double() - wb[k].double()).norm()) ** 2 for k in learned) ** 0.5
    size = sum(float(wa[k].double().norm()) ** 2 for k in learned) ** 0.5
    return same, gap / size


def store_differences(a: Path, b: Path) -> list[str]:
    import numpy as np
    import zarr

    facts = [json.loads((p / "facts.json").read_text()) for p in (a, b)]
    ga, gb = (zarr.open_group(f["store"], mode="r") for f in facts)
    found = []
    for group in sorted(ga.group_keys()):
        for name in STORE_ARRAYS:
            if name in ga[group] and not np.array_equal(ga[group][name][...], gb[group][name][...]):
                found.append(f"{group}/{name}")
    return found


def compare(a: Path, b: Path) -> int:
    la, lb = losses(a), losses(b)
    if la.keys() != lb.keys():
        print(f"the runs trained {len(la)} and {len(lb)} steps: compare runs of the same --steps")
        return 2
    first = next((step for step in sorted(la) if la[step] != lb[step]), None)
    for step in sorted(la):
        change = abs(la[step] - lb[step]) / abs(la[step])
        print(f"step {step:4d}: loss {la[step]:.9f} vs {lb[step]:.9f} (relative change {change:.1e})")
    stores = store_differences(a, b)
    same, distance = weight_distance(a, b)
    print(f"stores: {'arrays differ: ' + ', '.join(stores) if stores else 'bit-identical arrays'}")
    print(f"first step whose loss differs: {first}; weights bit-identical: {same} "
          f"(relative distance {distance:.2e})")
    return 0 if same and first is None and not stores else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("run")
    one.add_argument("out", type=Path)
    one.add_argument("--steps", type=int, default=20)
    one.add_argument("--store", type=Path, help="train on this store instead of precomputing one")
    two = commands.add_parser("compare")
    two.add_argument("a", type=Path)
    two.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.out, args.steps, args.store)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())

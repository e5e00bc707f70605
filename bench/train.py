"""What training from the cache costs: cached KD vs GT-only vs online KD, K variants in one pass, data wait, memory.

Builds a cache with the real `precompute` and a mid-size random-weight DPT teacher (tests/tiny_models.py
`make_bench_dpt`, loaded as `hf:PATH`) on synthetic splits, then times `kdcache.train.train` runs of one student:
  * per-epoch step-loop time of KD from the cache / GT-only (same student, same labeled split, same store);
  * online KD (the same teacher run on every augmented batch inside the loop) / cached KD, with the
    teacher / student forward FLOP ratio (torch FlopCounterMode, one image at the cache resolution);
  * K = 4 variants (gt-only, kd-labeled, kd-labeled-aux, kd-aux-only) in one pass vs 4 separate runs;
  * the loader's data-wait share of the step loop with the default worker count;
  * peak RSS of a loader-only pass over a 64- and a 1024-sample cache (it must not grow with the cache).
Last line: `cached_kd_vs_gt_only=<ratio>`.

    python bench/train.py [--labeled 128] [--aux 128] [--height 96 --width 128] [--batch 8] [--epochs 1] [--repeats 3]
                          [--student mobilevit-xxs] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))  # `helpers`: the test doubles the benches reuse

import torch  # noqa: E402

from kdcache.train import TrainConfig, train  # noqa: E402
from kdcache.train import loop as train_loop  # noqa: E402


def forward_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def build_cache(args, root: Path) -> tuple[str, str, dict]:
    from helpers.tiny_models import make_bench_dpt

    from kdcache.precompute import PrecomputeConfig, precompute
    from kdcache.teachers import create_teacher

    teacher_ref = "hf:" + str(make_bench_dpt(root / "teacher"))
    splits = {"labeled": f"synth-train[:{args.labeled}]", "aux": f"synth-aux[:{args.aux}]"}
    started = time.perf_counter()
    url = precompute(PrecomputeConfig(create_teacher(teacher_ref), list(splits.values()), str(root / "cache.zarr"),
                                      resolution=(args.height, args.width), batch_size=args.batch, shard_size=16,
                                      feature_layers="none"))
    print(f"precompute: {args.labeled + args.aux} images in {time.perf_counter() - started:.1f} s")
    return url, teacher_ref, splits


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the loader workers), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(args, root: Path, url: str, name: str, sources: dict, variants: list[dict], **extra):
    raw = {"cache": url, "out": str(root / "runs" / name), "sources": sources, "batch_size": args.batch,
           "epochs": args.epochs, "log_every": 1000, "variant": variants, "overwrite": True,
           "pretrained": False, **extra}  # offline, and a step costs the same from any weights
    cpu = cpu_seconds()
    results = train(TrainConfig.from_dict(raw))
    results[0].cpu_s = cpu_seconds() - cpu  # bench-only attribute: the whole run's CPU cost
    loop = results[0].train_time_s
    print(f"{name:<28} step loop {loop:7.2f} s  ({loop / results[0].steps * 1000:.0f} ms/step)  "
          f"data wait {results[0].data_wait_fraction:.1%}  wall {results[0].wall_time_s:.2f} s  "
          f"cpu {results[0].cpu_s:.2f} s")
    return results


def online_kd(teacher):
    """Wrap the loader so every augmented batch gets a fresh teacher map, as online distillation would."""
    original = train_loop.make_loader

    def make_loader(*args, **kwargs):
        for step, batch in original(*args, **kwargs):
            batch["teacher"] = teacher.predict(batch["image"]).depth.unsqueeze(1)
            yield step, batch

    return make_loader


BUILD = """
from helpers.train_support import build_cache
build_cache({path!r}, {{"synth-train": {count}}}, shard_size=16, resolution=({h}, {w}))
"""

PEAK_RSS = """
from kdcache.train import TrainConfig
from kdcache.train.cache_plan import inspect_cache, loader_plan
from kdcache.train.loader import make_loader
config = TrainConfig.from_dict({{"cache": {path!r}, "out": "unused", "sources": {{"labeled": "synth-train"}},
                                "batch_size": 8, "variant": [{{"student": "x", "mode": "kd-labeled"}}]}})
loader = make_loader(loader_plan(config, inspect_cache(config), 0, 1, 1), 0, {count} // 8, 0, False)
def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
before = peak = rss_mb()
for step, batch in loader:
    peak = max(peak, rss_mb())
print(before, peak)
"""


def peak_rss_mb(root: Path, count: int, args) -> tuple[float, float]:
    """(RSS before, peak RSS during) one loader pass over a `count`-sample cache, in a fresh process."""
    values = dict(path=str(root / f"mem{count}.zarr"), count=count, h=args.height, w=args.width)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", BUILD.format(**values)], check=True, capture_output=True, env=env)
    done = subprocess.run([sys.executable, "-c", PEAK_RSS.format(**values)], capture_output=True, text=True,
                          check=True)
    before, after = done.stdout.strip().splitlines()[-1].split()
    return float(before), float(after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labeled", type=int, default=128)
    parser.add_argument("--aux", type=int, default=128)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="alternating gt-only / cached-kd runs (min kept)")
    parser.add_argument("--variant-steps", type=int, default=16, help="steps of the K-variant comparison")
    parser.add_argument("--student", default="mobilevit-xxs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from kdcache.students import create_student
    from kdcache.teachers import create_teacher

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url, teacher_ref, splits = build_cache(args, root)
        labeled = {"labeled": splits["labeled"]}
        student = {"student": args.student}
        # One short run first, so one-time costs (lazy imports, allocator growth) land in no measurement.
        run(args, root, url, "warm-up", labeled, [{"mode": "kd-labeled", **student}], steps=2, epochs=1)
        # The CPU is shared: alternate the two configurations and keep each one's fastest epoch.
        gt_runs, kd_runs = [], []
        for _ in range(args.repeats):
            gt_runs.append(run(args, root, url, "gt-only", labeled, [{"mode": "gt-only", **student}])[0])
            kd_runs.append(run(args, root, url, "cached-kd", labeled, [{"mode": "kd-labeled", **student}])[0])
        gt = min(gt_runs, key=lambda r: r.train_time_s)
        kd = min(kd_runs, key=lambda r: r.train_time_s)
        teacher = create_teacher(teacher_ref)
        train_loop.make_loader, original = online_kd(teacher), train_loop.make_loader
        try:
            online = run(args, root, url, "online-kd", labeled, [{"mode": "kd-labeled", **student}])[0]
        finally:
            train_loop.make_loader = original
        image = torch.rand(1, 3, args.height, args.width)
        flops_student = forward_flops(lambda: create_student(args.student).eval()(image))
        flops_teacher = forward_flops(lambda: teacher.predict(image))

        modes = ["gt-only", "kd-labeled", "kd-labeled-aux", "kd-aux-only"]
        variants = [{"name": m, "mode": m, "seed": i, **student} for i, m in enumerate(modes)]
        fixed = {"steps": args.variant_steps}
        together = run(args, root, url, "4-variants-one-pass", splits, variants, **fixed)[0]
        separate = [run(args, root, url, f"separate-{v['name']}", splits, [v], **fixed)[0] for v in variants]
        small, large = peak_rss_mb(root, 64, args), peak_rss_mb(root, 1024, args)

    sep_loop = sum(r.train_time_s for r in separate)
    sep_wall = sum(r.wall_time_s for r in separate)
    sep_cpu = sum(r.cpu_s for r in separate)
    print(f"student {args.student}, {args.height}x{args.width}, batch {args.batch}, {args.epochs} epoch(s) of "
          f"{args.labeled} labeled (+{args.aux} aux), best of {args.repeats}, torch threads {args.threads}, "
          f"default loader workers; K-variant runs: {args.variant_steps} steps")
    print(f"gt_only_epoch_s={gt.train_time_s / args.epochs:.3f}")
    print(f"cached_kd_epoch_s={kd.train_time_s / args.epochs:.3f}")
    print(f"online_kd_epoch_s={online.train_time_s / args.epochs:.3f}")
    print(f"teacher_student_flop_ratio={flops_teacher / flops_student:.2f}  "
          f"(teacher {flops_teacher / 1e9:.2f} GFLOP, student {flops_student / 1e9:.2f} GFLOP per image)")
    print(f"online_kd_vs_cached_kd={online.train_time_s / kd.train_time_s:.3f}")
    print(f"one_pass_4_variants_vs_separate={together.train_time_s / sep_loop:.3f}  "
          f"(step loops {together.train_time_s:.2f} s vs {sep_loop:.2f} s; "
          f"wall {together.wall_time_s:.2f} s vs {sep_wall:.2f} s -> {together.wall_time_s / sep_wall:.3f}; "
          f"CPU {together.cpu_s:.2f} s vs {sep_cpu:.2f} s -> {together.cpu_s / sep_cpu:.3f})")
    print(f"data_wait_fraction={kd.data_wait_fraction:.4f}  (gt-only {gt.data_wait_fraction:.4f}, "
          f"4 variants {together.data_wait_fraction:.4f})")
    print(f"loader_rss_growth_mb={small[1] - small[0]:.1f} over a 64-sample cache vs {large[1] - large[0]:.1f} "
          f"over a 1024-sample cache (peak RSS {small[1]:.0f} vs {large[1]:.0f} MB)")
    cpu_ratio = min(r.cpu_s for r in kd_runs) / min(r.cpu_s for r in gt_runs)
    print(f"cached_kd_vs_gt_only_cpu={cpu_ratio:.3f}  (whole runs' CPU time, best of {args.repeats} each)")
    print(f"cached_kd_vs_gt_only={kd.train_time_s / gt.train_time_s:.3f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

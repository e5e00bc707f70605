"""Synthetic-world rendering speed: images per second on ONE core at 240x320 (numpy, single thread).

    /work/venv/bin/python bench/synth.py [--n 300] [--size 240 320] [--split synth-train]

Reports throughput from process CPU time (what one dedicated core would deliver, robust to other load
on the machine) and from wall-clock time; each over the best of 3 rounds. Last line:
`synth_images_per_s=<cpu-time figure>`.
"""

from __future__ import annotations

import os

# One thread before numpy loads: the figure is per core, and DataLoader workers run one thread each.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="images per round")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"))
    parser.add_argument("--split", default="synth-train")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from kdcache.data import open_split

    dataset = open_split(args.split, size=tuple(args.size))
    dataset[0]  # warm the per-size caches (rays, noise) outside the timing
    best_cpu = best_wall = float("inf")
    for round_ in range(args.rounds):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for index in range(round_ * args.n, (round_ + 1) * args.n):
            dataset[index]
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
        best_wall = min(best_wall, time.perf_counter() - start_wall)
    cpu_rate, wall_rate = args.n / best_cpu, args.n / best_wall
    height, width = args.size
    print(f"split={args.split} size={height}x{width} images/round={args.n} rounds={args.rounds}")
    print(f"ms_per_image_cpu={1000 / cpu_rate:.2f} ms_per_image_wall={1000 / wall_rate:.2f}")
    print(f"images_per_s_wall={wall_rate:.1f}")
    print(f"synth_images_per_s={cpu_rate:.1f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

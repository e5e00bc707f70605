"""Student zoo cost: parameters, GMACs and CPU latency of every preset at one resolution.

    python bench/students.py [--resolution 240x320] [--threads 1] [--repeats 10] [--student NAME ...]

Latency is the median of `repeats` timed eval forwards (batch 1, after 2 warm-up runs) with `threads` torch
threads. The last line is `default_student_cpu_ms=<median ms of the default preset>` (mobilevit).
"""

from __future__ import annotations

import argparse

import torch

from kdcache.students import create_student, describe_students, list_students
from kdcache.timing import median_seconds


def latency_ms(name: str, resolution: tuple[int, int], repeats: int) -> float:
    torch.manual_seed(0)
    model = create_student(name).eval()
    x = torch.rand(1, 3, *resolution)
    with torch.inference_mode():
        return 1000 * median_seconds(lambda: model(x), repeats, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", default="240x320")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--student", action="append")
    args = parser.parse_args()
    resolution = tuple(int(v) for v in args.resolution.split("x"))
    torch.set_num_threads(args.threads)
    names = args.student or list_students()
    print(f"| student | encoder | decoder | params (M) | GMACs @{args.resolution} | CPU ms ({args.threads} thread) |")
    print("|---|---|---|---:|---:|---:|")
    default_ms = None
    for row in describe_students(names, resolution):
        ms = latency_ms(row["name"], resolution, args.repeats)
        if row["name"] == "mobilevit":
            default_ms = ms
        print(f"| {row['name']} | {row['encoder']} | {row['decoder']} | {row['params'] / 1e6:.2f} | "
              f"{row['gmacs']:.2f} | {ms:.1f} |", flush=True)
    if default_ms is None:
        default_ms = latency_ms("mobilevit", resolution, args.repeats)
    print(f"default_student_cpu_ms={default_ms:.1f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

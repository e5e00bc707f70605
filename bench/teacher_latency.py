"""CPU cost of a mid-size HF DPT teacher through `Teacher.predict` (the stand-in teacher of precompute's bench).

Builds `tests/tiny_models.make_bench_dpt` (ViT hidden 256, 6 layers, 224x224) in a temp folder, loads it as
`hf:PATH` and times `predict` on cache-resolution batches, with and without the default feature layers.
Prints ms/image and the feature overhead ratio; last line `teacher_latency=<ms per image>`.

    python bench/teacher_latency.py [--threads 1] [--batch 8] [--height 192 --width 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # `helpers`: the test doubles the benches reuse

import torch  # noqa: E402


def time_predict(teacher, images, layers, repeats: int) -> float:
    teacher.predict(images[:1], layers)  # warm-up: allocator, kernels
    start = time.perf_counter()
    for _ in range(repeats):
        teacher.predict(images, layers)
    return (time.perf_counter() - start) / (repeats * images.shape[0]) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from helpers.tiny_models import make_bench_dpt

    from kdcache.teachers import create_teacher

    with tempfile.TemporaryDirectory() as tmp:
        teacher = create_teacher(f"hf:{make_bench_dpt(Path(tmp) / 'bench-dpt')}")
    images = torch.rand(args.batch, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))
    plain = time_predict(teacher, images, [], args.repeats)
    with_features = time_predict(teacher, images, teacher.default_feature_layers, args.repeats)
    print(f"teacher: {teacher.params / 1e6:.1f} M params, input {teacher.rule.summary()}, "
          f"cache images {args.height}x{args.width}, batch {args.batch}, {args.threads} thread(s)")
    print(f"predict, depth only:           {plain:8.1f} ms/image")
    print(f"predict, + {len(teacher.default_feature_layers)} neck feature maps: {with_features:8.1f} ms/image "
          f"(x{with_features / plain:.2f})")
    print(f"teacher_latency={plain:.1f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

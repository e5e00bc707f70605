"""Precompute efficiency: bare teacher forward time / full `precompute` wall time, on the same images.

The teacher is a mid-size random-weight HF DPT (tests/tiny_models.make_bench_dpt, ~50-100 ms/image on one
CPU core) loaded through the real `hf:` path; the images are JPEGs in a folder (`folder:` split), so the
full run pays for decoding, resizing, pooling, PCA projection, compression and durable writes. 1.0 means
the teacher never waits for the rest of the pipeline.

    python bench/precompute.py [--images 256] [--threads 1] [--workers 1] [--device cpu] [--repeats 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def write_images(folder: Path, count: int) -> None:
    """Smooth random colour fields with edges (JPEG-compressible like photos), 480x640."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((640, 480), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)


def bare_forward_seconds(teacher, folder: Path, resolution, batch_size: int) -> float:
    from kdcache.precompute.resize import resize_image

    images = [resize_image(np.asarray(Image.open(p).convert("RGB")), resolution) for p in sorted(folder.glob("*.jpg"))]
    batches = [torch.from_numpy(np.stack(images[i:i + batch_size])).permute(0, 3, 1, 2).float() / 255
               for i in range(0, len(images), batch_size)]
    layers = teacher.default_feature_layers
    teacher.predict(batches[0][:1].to(teacher.device), layers=layers)  # warm-up
    start = time.perf_counter()
    for batch in batches:
        out = teacher.predict(batch.to(teacher.device), layers=layers)
        if teacher.device.type == "cuda":
            torch.cuda.synchronize()
        del out
    return time.perf_counter() - start


def _time_predict(teacher) -> list[float]:
    """Accumulate the wall time spent inside `teacher.predict` (the part of a run where the teacher works)."""
    total = [0.0]
    predict = teacher.predict

    def timed_predict(*args, **kwargs):
        start = time.perf_counter()
        try:
            return predict(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - start

    teacher.predict = timed_predict
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the teacher")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", default="240x320")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    resolution = tuple(int(v) for v in args.resolution.split("x"))

    from kdcache.precompute import precompute
    from kdcache.store.info import store_info
    from kdcache.teachers import create_teacher
    from tiny_models import make_bench_dpt

    work = Path(tempfile.mkdtemp(prefix="kdcache-bench-"))
    try:
        model_dir = make_bench_dpt(work / "teacher")
        write_images(work / "images", args.images)
        teacher = create_teacher(f"hf:{model_dir}", device=args.device)
        busy = _time_predict(teacher)
        bares, fulls = [], []
        for repeat in range(args.repeats):  # alternate, keep the best of each: robust to a shared machine's load
            bares.append(bare_forward_seconds(teacher, work / "images", resolution, args.batch_size))
            shutil.rmtree(work / "cache.zarr", ignore_errors=True)
            start, cpu = time.perf_counter(), time.process_time()
            busy[0] = 0.0
            precompute(teacher, [f"folder:{work / 'images'}"], str(work / "cache.zarr"), resolution=resolution,
                       batch_size=args.batch_size, device=args.device, workers=args.workers, shard_size=32)
            fulls.append(time.perf_counter() - start)
            print(f"repeat {repeat}: bare {bares[-1]:.2f} s, full {fulls[-1]:.2f} s "
                  f"(main process CPU {time.process_time() - cpu:.2f} s; teacher busy {busy[0] / fulls[-1]:.1%} "
                  f"of the full run's wall time)")
        bare, full = min(bares), min(fulls)
        _, infos = store_info(str(work / "cache.zarr"))
        print(f"images: {args.images} at {resolution[0]}x{resolution[1]}, batch {args.batch_size}, "
              f"torch threads {args.threads}, workers {args.workers}, device {args.device}")
        print(f"teacher forward: {1000 * bare / args.images:.1f} ms/image ({bare:.2f} s)")
        print(f"full precompute: {1000 * full / args.images:.1f} ms/image ({full:.2f} s), "
              f"{infos[0].bytes_per_sample / 1024:.1f} KiB/sample stored, compression {infos[0].compression:.2f}x")
        print(f"precompute_efficiency={bare / full:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Precompute efficiency: bare teacher throughput / full `precompute` throughput, on the same images.

1.0 means the teacher never waits for the pipeline around it (decoding, transfers, pooling, PCA,
compression, durable writes). Teachers (`--teacher`):
- `emulated` (with `--teacher-ms N`): an emulated GPU running DPT-Large at N ms per image (`emulated:N`,
  kdcache/teachers/emulated.py): `predict` returns at once and the outputs are ready N ms per image later,
  so a pipeline that synchronises early pays the wait, as on a GPU. Proves GPU-speed behaviour on a CPU.
- `dpt-large-arch`: DPT-Large's architecture with random weights (published config, `save_pretrained`,
  loaded through `hf:DIR`). Use it on a GPU: `--device cuda --precision bf16 --batch-size 32`.
- `bench-dpt` (default): a mid-size random-weight DPT, ~50-100 ms/image on one CPU core.
Images are JPEGs of `--input-size` in a `folder:` split, cached at `--resolution`.

    python bench/precompute.py --teacher emulated --teacher-ms 4 --input-size 240x320 --images 1024
    python bench/precompute.py --teacher dpt-large-arch --device cuda --precision bf16 --batch-size 32 \\
        --input-size 480x640 --images 8192 --workers 14 --cli

The steady state is `precompute()` in-process with the teacher already loaded; `--cli` also times the whole
`kdcache precompute` command (start-up and final drain included). The last line is `precompute_efficiency=`
(steady state).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # `helpers`: the test doubles the benches reuse


def write_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    """Smooth random colour fields with edges (JPEG-compressible like photos)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        small = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)


def synchronize(teacher) -> None:
    """Wait for the teacher's queued work (a CUDA device, or the emulated one)."""
    if hasattr(teacher, "synchronize"):
        teacher.synchronize()
    elif teacher.device.type == "cuda":
        torch.cuda.synchronize(teacher.device)


def bare_forward_seconds(teacher, folder: Path, resolution, batch_size: int) -> float:
    """`Teacher.predict` (default feature layers) over pre-decoded, pre-resized batches already on the device."""
    from kdcache.precompute.resize import resize_image

    images = [resize_image(np.asarray(Image.open(p).convert("RGB")), resolution) for p in sorted(folder.glob("*.jpg"))]
    batches = [torch.from_numpy(np.stack(images[i:i + batch_size])).permute(0, 3, 1, 2).float().div(255)
               .to(teacher.device) for i in range(0, len(images), batch_size)]
    layers = teacher.default_feature_layers
    teacher.predict(batches[0][:1], layers=layers)  # warm-up
    synchronize(teacher)
    start = time.perf_counter()
    for batch in batches:
        out = teacher.predict(batch, layers=layers)
        del out
    synchronize(teacher)
    return time.perf_counter() - start


def build_teacher(args, work: Path) -> str:
    """The teacher name to create (`emulated:N`, or `hf:DIR` of a freshly built random-weight model)."""
    if args.teacher == "emulated":
        return f"emulated:{args.teacher_ms:g}"
    from helpers.tiny_models import make_bench_dpt, make_dpt_large_arch

    builder = {"bench-dpt": make_bench_dpt, "dpt-large-arch": make_dpt_large_arch}[args.teacher]
    return f"hf:{builder(work / 'teacher')}"


def cli_seconds(settings, work: Path) -> float:
    """Wall time of the whole `kdcache precompute` command (a fresh process: imports, teacher load, drain)."""
    from dataclasses import replace

    out = work / "cli.zarr"
    command = [sys.executable, "-m", "kdcache.cli.main", *replace(settings, out=str(out)).argv()[1:]]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", choices=["bench-dpt", "emulated", "dpt-large-arch"], default="bench-dpt")
    parser.add_argument("--teacher-ms", type=float, default=4.0, help="ms per image of the emulated teacher")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--input-size", default="480x640", help="size HxW of the generated JPEGs")
    parser.add_argument("--resolution", default="240x320", help="cache resolution HxW")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--workers", type=int, default=None, help="decode workers (default: precompute's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cli", action="store_true", help="also time the whole `kdcache precompute` command")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from dataclasses import replace

    from kdcache.devices import default_workers
    from kdcache.precompute import PrecomputeConfig, precompute
    from kdcache.sizes import parse_hw
    from kdcache.store.info import store_info
    from kdcache.teachers import create_teacher

    resolution, input_size = parse_hw(args.resolution, "--resolution"), parse_hw(args.input_size, "--input-size")
    args.workers = default_workers("precompute") if args.workers is None else args.workers
    work = Path(tempfile.mkdtemp(prefix="kdcache-bench-"))
    try:
        name = build_teacher(args, work)
        write_images(work / "images", args.images, input_size)
        teacher = create_teacher(name, device=args.device, precision=args.precision)
        settings = PrecomputeConfig(name, [f"folder:{work / 'images'}"], str(work / "cache.zarr"), resolution=resolution,
                                    batch_size=args.batch_size, device=args.device, precision=args.precision,
                                    workers=args.workers, feature_layers="default")  # the setting: 4 neck layers
        bares, fulls = [], []
        for repeat in range(args.repeats):  # alternate, keep the best of each: robust to a shared machine's load
            bares.append(bare_forward_seconds(teacher, work / "images", resolution, args.batch_size))
            shutil.rmtree(work / "cache.zarr", ignore_errors=True)
            start, cpu = time.perf_counter(), time.process_time()
            precompute(replace(settings, teacher=teacher))
            fulls.append(time.perf_counter() - start)
            print(f"repeat {repeat}: bare {bares[-1]:.2f} s, full {fulls[-1]:.2f} s "
                  f"(main process CPU {time.process_time() - cpu:.2f} s)", flush=True)
        bare, full = min(bares), min(fulls)
        _, infos = store_info(str(work / "cache.zarr"))
        print(f"teacher {name}, images: {args.images} of {args.input_size} cached at {args.resolution}, "
              f"batch {args.batch_size}, workers {args.workers}, device {args.device}, torch threads "
              f"{torch.get_num_threads()} (the load: last line)")
        print(f"bare teacher: {args.images / bare:.1f} img/s ({bare:.2f} s); spread over repeats "
              f"{min(bares):.2f}-{max(bares):.2f} s")
        print(f"full precompute: {args.images / full:.1f} img/s ({full:.2f} s); spread {min(fulls):.2f}-"
              f"{max(fulls):.2f} s; {infos[0].bytes_per_sample / 1024:.1f} KiB/sample stored, "
              f"compression {infos[0].compression:.2f}x")
        if args.cli:
            whole = cli_seconds(settings, work)
            print(f"whole command: {args.images / whole:.1f} img/s ({whole:.2f} s)")
            print(f"whole_command_efficiency={bare / whole:.3f}")
        print(f"precompute_efficiency={bare / full:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

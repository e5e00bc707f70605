"""What one student training step costs on this machine, and what would make it cheaper.

One forward + backward + AdamW step of a student preset on a random batch at the cache resolution, timed under
each option in turn, the options interleaved over `--repeats` rounds so a noisy machine hits them all alike:
  * fp32            the trainer's CPU default (channels-last, autocast off);
  * bf16            `kdcache train --amp bf16` (autocast to bfloat16);
  * pad-32          the input padded to a multiple of 32 instead of the encoder's own multiple (64 for MobileViT,
                    whose blocks then interpolate their maps to whole patches): fewer pixels, another model;
  * compile         `torch.compile` of the student (inductor; its compile time is printed apart); `--compile` only.
Prints the median step time of each option per round, then the ratio of every option to fp32 over the rounds
(mean ± sd). Last line: `bf16_vs_fp32=<ratio> pad32_vs_fp32=<ratio>`.

    python bench/train_step.py [--student mobilevit-xxs] [--resolution 96x128] [--batch 16] [--threads 1]
                               [--steps 12] [--repeats 3] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdcache.students import create_student
from kdcache.timing import median_seconds


def _student(name: str, input_multiple: int | None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_student(name).train().to(memory_format=torch.channels_last)
    if input_multiple is not None:
        model.encoder.input_multiple = input_multiple
    return model


def _step_fn(model: torch.nn.Module, images: torch.Tensor, bf16: bool):
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            depth = model(images)
        assert depth.shape[-2:] == images.shape[-2:]
        depth.float().abs().mean().backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="mobilevit-xxs")
    parser.add_argument("--resolution", default="96x128")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = (int(side) for side in args.resolution.split("x"))
    images = torch.rand(args.batch, 3, height, width).contiguous(memory_format=torch.channels_last)
    options = {"fp32": (None, False), "bf16": (None, True), "pad-32": (32, False)}
    steps = {name: _step_fn(_student(args.student, multiple), images, bf16)
             for name, (multiple, bf16) in options.items()}
    if args.compile:
        started = time.perf_counter()
        steps["compile"] = _step_fn(torch.compile(_student(args.student, None)), images, False)
        steps["compile"]()
        print(f"compile: first step (compiling) {time.perf_counter() - started:.1f} s")
    rounds = []
    for repeat in range(args.repeats):
        rounds.append({name: median_seconds(step, args.steps, warmup=3) for name, step in steps.items()})
        print(f"round {repeat + 1}: " + ", ".join(f"{name} {s * 1e3:.0f} ms" for name, s in rounds[-1].items()),
              flush=True)
    ratios = {name: [r[name] / r["fp32"] for r in rounds] for name in steps if name != "fp32"}
    for name, values in ratios.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{name} / fp32 step time: {statistics.fmean(values):.3f} ± {spread:.3f}")
    print(f"bf16_vs_fp32={statistics.fmean(ratios['bf16']):.3f} pad32_vs_fp32={statistics.fmean(ratios['pad-32']):.3f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

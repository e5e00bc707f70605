"""Teacher vs student: parameters, GFLOPs and CPU latency at the same resolution.

DPT-Large's weights cannot be downloaded here, but its cost does not depend on them: the architecture is
built from the published Intel/dpt-large config (ViT-L/16, 24 layers, hidden 1024, neck 256-512-1024-1024,
fusion 256) with random weights, which has the same parameters and FLOPs. The student is a registered
preset (default `mobilevit`), also random. Both run through kdcache.evaluate.measure_efficiency (median
batch-1 latency after warm-up, same thread count).

    python bench/efficiency.py [--student mobilevit] [--size 384] [--threads 2]

Targets for the default preset: <= 3 % of DPT-Large's parameters and >= 15x lower CPU latency.
Last line: student_speedup_vs_teacher=<ratio>.
"""

from __future__ import annotations

import argparse

import torch

from kdcache.evaluate import Predictor, measure_efficiency

# Intel/dpt-large config.json (the values that differ from DPTConfig() defaults, which are ViT-B sized).
DPT_LARGE = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, image_size=384,
    patch_size=16, backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024],
    fusion_hidden_size=256, readout_type="project", reassemble_factors=[4, 2, 1, 0.5], qkv_bias=True,
)
PUBLISHED_DPT_LARGE_PARAMS = 343_000_000  # the Intel/dpt-large model card on the Hugging Face Hub: ~343 M


class ModulePredictor(Predictor):
    """Any (B,3,H,W) -> depth module, so teacher and student are timed by the same code."""

    def __init__(self, name: str, module: torch.nn.Module, call):
        super().__init__(name, "depth", torch.device("cpu"), module.eval())
        self.call = call

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.call(self.module, images)


def build_dpt_large() -> torch.nn.Module:
    from transformers import DPTConfig, DPTForDepthEstimation

    return DPTForDepthEstimation(DPTConfig(**DPT_LARGE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="mobilevit")
    parser.add_argument("--size", type=int, default=384, help="square input side (DPT-Large runs at 384 only)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    from kdcache.students import create_student

    teacher = ModulePredictor("dpt-large", build_dpt_large(), lambda m, x: m(pixel_values=x).predicted_depth)
    student = ModulePredictor(args.student, create_student(args.student), lambda m, x: m(x)[:, 0])
    size = (args.size, args.size)
    print(f"# CPU, {args.threads} thread(s), batch 1, {args.size}x{args.size}, torch {torch.__version__}")
    results = {}
    for predictor, repeats in ((teacher, args.repeats), (student, 4 * args.repeats)):
        eff = measure_efficiency(predictor, size, throughput_batch=0, warmup=2, repeats=repeats)
        results[predictor.name] = eff
        print(f"{predictor.name:>16}: params {eff['params'] / 1e6:8.2f} M  GFLOPs {eff['gflops']:8.2f}  "
              f"latency {eff['latency_ms']:9.1f} ms  peak {eff['peak_memory_mib']:7.1f} MiB")
    t, s = results["dpt-large"], results[args.student]
    drift = abs(t["params"] - PUBLISHED_DPT_LARGE_PARAMS) / PUBLISHED_DPT_LARGE_PARAMS
    print(f"dpt-large params vs published 343 M: {100 * drift:.2f} % off")
    params_ratio = s["params"] / t["params"]
    speedup = t["latency_ms"] / s["latency_ms"]
    print(f"student_params_fraction={100 * params_ratio:.2f}%  (target <= 3 %: {'ok' if params_ratio <= 0.03 else 'MISSED'})")
    print(f"student_gflops_fraction={100 * s['gflops'] / t['gflops']:.2f}%")
    print(f"latency target >= 15x: {'ok' if speedup >= 15 else 'MISSED'}")
    print(f"student_speedup_vs_teacher={speedup:.1f}")


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

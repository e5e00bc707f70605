"""Named student presets: one decorated function each, returning the spec `create_student` builds.

`kdcache students` prints each preset's params and GMACs. Decoder widths scale with the encoder (48-64 for
mobile encoders, 96-128 for ResNets). `hu-mobilenetv2` reproduces Hu et al.'s student as published: MobileNetV2
cut after its 160-channel stage, 1.67 M params; its full-width 5x5 convs at stride 2 make it the most
MAC-heavy small preset (4.7 GMACs at 240x320), as in the original.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from kdcache.registry import Registry

STUDENTS: Registry = Registry("student", list_command="kdcache students")
register_student = STUDENTS.register


@dataclass(frozen=True)
class StudentSpec:
    """What a student is made of; every field can be overridden in `create_student(name, **overrides)`."""

    encoder: str
    decoder: str
    width: int | None = None  # decoder width (None: the decoder's own default)
    init_depth: float = 2.5  # metres predicted everywhere before training
    min_depth: float = 1e-3  # floor of the softplus output, keeps 1/depth finite
    drop_last_block: bool = False
    out_indices: tuple[int, ...] | None = None
    fold_norm: bool = False  # input normalisation folded into the encoder's first conv (no Sub/Div at inference)

    def replace(self, **overrides: Any) -> "StudentSpec":
        fields = asdict(self)
        fields.update(overrides)
        return StudentSpec(**fields)


SPEC_FIELDS = tuple(f.name for f in fields(StudentSpec))  # what a spec or an override may name


@register_student("mobilevit", description="MobileViT-XS + mini-DPT (the default)")
def mobilevit() -> StudentSpec:
    return StudentSpec("mobilevit_xs", "minidpt", width=64)


@register_student("mobilevit-s", description="MobileViT-S + mini-DPT")
def mobilevit_s() -> StudentSpec:
    return StudentSpec("mobilevit_s", "minidpt", width=96)


@register_student("mobilevit-xxs", description="MobileViT-XXS + mini-DPT (smallest)")
def mobilevit_xxs() -> StudentSpec:
    return StudentSpec("mobilevit_xxs", "minidpt", width=48)


@register_student("mobilevitv2-050", description="MobileViTv2-0.5 + mini-DPT")
def mobilevitv2_050() -> StudentSpec:
    return StudentSpec("mobilevitv2_050", "minidpt", width=64)


@register_student("hu-mobilenetv2", description="Hu et al.'s KD student: MobileNetV2 (to 160 ch) + MFF decoder")
def hu_mobilenetv2() -> StudentSpec:
    return StudentSpec("mobilenetv2_100", "hu", width=16, drop_last_block=True)


@register_student("fastdepth", description="FastDepth: MobileNet(v1) + NNConv5 with additive skips")
def fastdepth() -> StudentSpec:
    return StudentSpec("mobilenetv1_100", "nnconv5", width=32)


@register_student("mobilenetv3-minidpt", description="MobileNetV3-Large + mini-DPT")
def mobilenetv3_minidpt() -> StudentSpec:
    return StudentSpec("mobilenetv3_large_100", "minidpt", width=64)


@register_student("efficientnet-b0", description="EfficientNet-B0 + mini-DPT")
def efficientnet_b0() -> StudentSpec:
    return StudentSpec("efficientnet_b0", "minidpt", width=64)


@register_student("resnet18-minidpt", description="ResNet-18 + mini-DPT")
def resnet18_minidpt() -> StudentSpec:
    return StudentSpec("resnet18", "minidpt", width=96)


@register_student("resnet50-minidpt", description="ResNet-50 + mini-DPT (a large in-house teacher for two-stage KD)")
def resnet50_minidpt() -> StudentSpec:
    return StudentSpec("resnet50", "minidpt", width=128)


# Designed for the 60 FPS budget (bench/pareto.py, docs/benchmarks.md "Students: accuracy against speed"):
# CPU-friendly encoders without MobileViT's unfold/attention blocks and its pad-to-64, a mini-DPT half as wide
# (width 32: the decoder's stride-4 units dominate the cost of a light encoder at 240x320), and the input
# normalisation folded into the first convolution.
@register_student("mobilenetv3-lite", description="MobileNetV3-Large + thin mini-DPT (w32), normalisation folded")
def mobilenetv3_lite() -> StudentSpec:
    return StudentSpec("mobilenetv3_large_100", "minidpt", width=32, fold_norm=True)


@register_student("mobilenetv3-small-lite", description="MobileNetV3-Small + thin mini-DPT (w32), normalisation folded")
def mobilenetv3_small_lite() -> StudentSpec:
    return StudentSpec("mobilenetv3_small_100", "minidpt", width=32, fold_norm=True)


@register_student("mobilenetv4-lite", description="MobileNetV4-Conv-Small + thin mini-DPT (w32), normalisation folded")
def mobilenetv4_lite() -> StudentSpec:
    return StudentSpec("mobilenetv4_conv_small", "minidpt", width=32, fold_norm=True)


@register_student("lcnet-lite", description="PP-LCNet-1.0 (a CPU-first net) + thin mini-DPT (w32), normalisation folded")
def lcnet_lite() -> StudentSpec:
    return StudentSpec("lcnet_100", "minidpt", width=32, fold_norm=True)


@register_student("efficientvit-lite", description="EfficientViT-B0 (linear attention) + thin mini-DPT (w32), "
                                                     "normalisation folded")
def efficientvit_lite() -> StudentSpec:
    return StudentSpec("efficientvit_b0", "minidpt", width=32, fold_norm=True)


@register_student("efficientvit-nnconv5", description="EfficientViT-B0 + FastDepth's NNConv5 decoder (w32), "
                                                        "normalisation folded")
def efficientvit_nnconv5() -> StudentSpec:
    return StudentSpec("efficientvit_b0", "nnconv5", width=32, fold_norm=True)


@register_student("mobilenetv4-nnconv5", description="MobileNetV4-Conv-Small + FastDepth's NNConv5 decoder (w32), "
                                                       "normalisation folded")
def mobilenetv4_nnconv5() -> StudentSpec:
    return StudentSpec("mobilenetv4_conv_small", "nnconv5", width=32, fold_norm=True)


# -- speed-budget aliases ------------------------------------------------------------------------------------------
# `--student realtime-N`: the most accurate preset at >= N FPS (240x320, onnxruntime, 2 CPU threads, batch 1).
# Accuracy: `bench/pareto.py --scale full` and `bench/realtime_seeds.py` (docs/results.md, "Real-time presets at scale
# `full`", 3 seeds; the README's budget table is written from it). Speed: quiet 2-core machine, median of interleaved
# rounds. One file's quiet median moves ~1.5x between hours there (mobilenetv4-nnconv5: 144-152 FPS in four timings
# on 2026-12-06, 96 in an earlier one), so a budget's preset must meet it in every quiet hour on record.
def _alias(preset: str) -> StudentSpec:
    return STUDENTS.create(preset)


@register_student("realtime-30", alias_of="mobilenetv4-nnconv5",
                  description="= mobilenetv4-nnconv5: most accurate at >= 30 FPS (96-152 FPS quiet; at scale full "
                              "+10.0 % AbsRel behind the teacher, +1.4 % with 2x the epochs)")
def realtime_30() -> StudentSpec:
    return _alias("mobilenetv4-nnconv5")


@register_student("realtime-60", alias_of="mobilenetv4-nnconv5",
                  description="= mobilenetv4-nnconv5: most accurate at >= 60 FPS (96-152 FPS quiet; at scale full "
                              "+10.0 % AbsRel behind the teacher, +1.4 % with 2x the epochs)")
def realtime_60() -> StudentSpec:
    return _alias("mobilenetv4-nnconv5")


@register_student("realtime-120", alias_of="mobilenetv3-small-lite",
                  description="= mobilenetv3-small-lite: most accurate at >= 120 FPS in every quiet hour timed "
                              "(151-236 FPS quiet; at scale full +17.9 % AbsRel behind the teacher)")
def realtime_120() -> StudentSpec:
    return _alias("mobilenetv3-small-lite")

"""The built-in teacher names. One registration per teacher; the keyword facts feed `kdcache teachers`.

Facts (params, layers, licences) are those of the published checkpoints; the layer names a loaded teacher
actually exposes are always read from its config (`hf_arch.read_architecture`), and tests check both agree.
"""

from __future__ import annotations

from kdcache.teachers import register_teacher
from kdcache.teachers.base import NoTeacher

_DPT_INPUT = "384x384, bilinear, mean=std=0.5 (its preprocessor_config.json when on disk)"
_DA_INPUT = "518x518 keeping the aspect, x14, bicubic, ImageNet (its preprocessor_config.json when on disk)"
_NECK = ["neck_0", "neck_1", "neck_2", "neck_3"]

# Licences of known hub ids, so `hf:<id>` states them even when the model card is not cached.
HUB_LICENCES = {
    "Intel/dpt-large": "apache-2.0",
    "Intel/dpt-hybrid-midas": "apache-2.0",
    "depth-anything/Depth-Anything-V2-Small-hf": "apache-2.0",
    "depth-anything/Depth-Anything-V2-Base-hf": "cc-by-nc-4.0",
    "depth-anything/Depth-Anything-V2-Large-hf": "cc-by-nc-4.0",
}


def _hub(hub_id: str, model_class: str, name: str, device, precision, **options):
    import transformers

    from kdcache.teachers.hf import create_hf_teacher

    return create_hf_teacher(hub_id, name=name, model_class=getattr(transformers, model_class),
                             licence=HUB_LICENCES[hub_id], device=device, precision=precision, **options)


@register_teacher(
    "dpt-large", source="Intel/dpt-large", model_class="DPTForDepthEstimation", output_space="disparity",
    input_rule=_DPT_INPUT, feature_layers=["hidden_6", "hidden_12", "hidden_18", "hidden_24", *_NECK],
    params=343_000_000, licence=HUB_LICENCES["Intel/dpt-large"],
)
def dpt_large(device="cpu", precision="fp32", **options):
    """DPT-Large (MiDaS v3, ViT-L/16): relative inverse depth."""
    return _hub("Intel/dpt-large", "DPTForDepthEstimation", "dpt-large", device, precision, **options)


@register_teacher(
    "dpt-hybrid", source="Intel/dpt-hybrid-midas", model_class="DPTForDepthEstimation", output_space="disparity",
    input_rule=_DPT_INPUT, feature_layers=["backbone_stage1", "backbone_stage2", "hidden_9", "hidden_12", *_NECK],
    params=123_000_000, licence=HUB_LICENCES["Intel/dpt-hybrid-midas"],
)
def dpt_hybrid(device="cpu", precision="fp32", **options):
    """DPT-Hybrid (ResNet-50 + ViT-B/16): relative inverse depth; runs at 384x384 only."""
    return _hub("Intel/dpt-hybrid-midas", "DPTForDepthEstimation", "dpt-hybrid", device, precision, **options)


def _register_depth_anything(size: str, hidden_layers: list[str], params: int) -> None:
    """One Depth Anything V2 size: the three differ only in hub id, hooked layers, parameters and licence."""
    hub_id = f"depth-anything/Depth-Anything-V2-{size.capitalize()}-hf"
    name = f"depth-anything-v2-{size}"

    @register_teacher(
        name, source=hub_id, model_class="DepthAnythingForDepthEstimation", output_space="disparity",
        input_rule=_DA_INPUT, feature_layers=[*hidden_layers, *_NECK], params=params, licence=HUB_LICENCES[hub_id],
    )
    def depth_anything_v2(device="cpu", precision="fp32", **options):
        return _hub(hub_id, "DepthAnythingForDepthEstimation", name, device, precision, **options)

    depth_anything_v2.__doc__ = f"Depth Anything V2 {size.capitalize()} (DINOv2): relative inverse depth; {HUB_LICENCES[hub_id]}."


_register_depth_anything("small", ["hidden_3", "hidden_6", "hidden_9", "hidden_12"], 24_800_000)
_register_depth_anything("base", ["hidden_3", "hidden_6", "hidden_9", "hidden_12"], 97_500_000)
_register_depth_anything("large", ["hidden_5", "hidden_12", "hidden_18", "hidden_24"], 335_300_000)


@register_teacher(
    "none", source="-", output_space=None, input_rule="-", feature_layers=[], params=0, licence=None,
    description="no teacher: cache images and ground truth only",
)
def none(device="cpu", precision="fp32", **options):
    """No teacher: a store of images and GT; `output_space` is None and `predict` refuses to run."""
    return NoTeacher(device, precision)


@register_teacher(
    "hf:", argument="ID_OR_PATH", source="HF hub id or local folder", output_space="from config", input_rule="from config",
    feature_layers="from config", params=None, licence="from model card",
    description="any DPT / Depth Anything hub id or local save_pretrained folder",
)
def hf(ref: str, device="cpu", precision="fp32", **options):
    """`hf:ORG/NAME` or `hf:/path/to/folder`: a transformers depth model loaded with AutoModelForDepthEstimation."""
    from kdcache.teachers.hf import create_hf_teacher

    return create_hf_teacher(ref, licence=HUB_LICENCES.get(ref), device=device, precision=precision, **options)


@register_teacher(
    "ckpt:", argument="PATH", source="kdcache student run or checkpoint", output_space="from meta", input_rule="native size",
    feature_layers="feat_{0..n} (fine to coarse)", params=None, licence="from checkpoint",
    description="a kdcache student checkpoint or run dir (two-stage distillation)",
)
def ckpt(ref: str, device="cpu", precision="fp32", **options):
    """`ckpt:PATH`: a kdcache student as teacher."""
    from kdcache.teachers.student_teacher import create_checkpoint_teacher

    return create_checkpoint_teacher(ref, device=device, precision=precision, **options)


@register_teacher(
    "emulated:", argument="MS", source="emulated GPU, MS ms per image", output_space="disparity", input_rule="none (no model runs)",
    feature_layers="dpt-large's shapes", params=None, licence=None,
    description="benchmark stand-in: an emulated GPU running DPT-Large at MS ms/image; outputs are synthetic",
)
def emulated(ms: str, device="cpu", precision="fp32", **options):
    """`emulated:MS`: measure the pipeline around a GPU teacher on any machine (`kdcache.teachers.emulated`)."""
    from kdcache.teachers.emulated import create_emulated_teacher

    return create_emulated_teacher(ms)

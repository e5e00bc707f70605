"""What kdcache needs to know about a transformers depth architecture, read from its config.

Per family: the default input rule (`hf_processor` reads the model's own processor config when it is on disk;
these are what the published configs say: DPT 384x384, bilinear, mean=std=0.5; Depth Anything V2 518x518 keeping
the aspect on the /14 grid, bicubic, ImageNet mean/std; both resize the uint8 image and resize the depth back
bicubic), the patch size, the output space, and the names of the
tensors the neck consumes (`hidden_K` = output of transformer layer K, i.e. `hidden_states[K]`, so
DPT-Large's `backbone_out_indices [5, 11, 17, 23]` give hidden_6 ... hidden_24) and produces (`neck_i`).
Reading these from the config means tiny test configs get their own, correct names.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcache.errors import KdcacheError
from kdcache.model_input import HALF_MEAN_STD, IMAGENET_MEAN, IMAGENET_STD, ResizeRule
from kdcache.teachers.hf_processor import processor_rule

SUPPORTED_MODEL_TYPES = ("dpt", "depth_anything")
# Backbones whose stages are plain transformer layers (stage K == hidden_states[K]); others are hierarchical.
_VIT_LIKE = ("dinov2", "dinov2_with_registers", "beit", "data2vec-vision", "vit")


@dataclass(frozen=True)
class Architecture:
    model_type: str
    rule: ResizeRule
    patch_size: int
    output_space: str
    neck_inputs: list[str]  # names of the tensors fed to `model.neck`, in order
    neck_outputs: list[str]  # neck_0 (coarsest, first fusion output) ... neck_{n-1} (finest, fed to the head)

    @property
    def feature_layers(self) -> list[str]:
        return self.neck_inputs + self.neck_outputs


def read_architecture(config, input_size: int | None = None, output_space: str | None = None,
                      processor: dict | None = None) -> Architecture:
    """`processor`: the model's `preprocessor_config.json` (`hf_processor.processor_config`), if any."""
    model_type = getattr(config, "model_type", None)
    if model_type == "dpt":
        arch = _dpt(config, input_size, processor)
    elif model_type == "depth_anything":
        arch = _depth_anything(config, input_size, processor)
    else:
        raise KdcacheError(
            f"teacher architecture '{model_type}' is not supported yet: kdcache knows the exact preprocessing of "
            f"{', '.join(SUPPORTED_MODEL_TYPES)} models; use a DPT or Depth Anything checkpoint"
        )
    if output_space is not None:
        arch = Architecture(**{**arch.__dict__, "output_space": output_space})
    return arch


def _dpt(config, input_size: int | None, processor: dict | None) -> Architecture:
    backbone = config.backbone_config
    if config.is_hybrid:
        patch, native = _int(config.patch_size), _int(config.image_size)
        conv_stages = list(backbone.out_features)[:2]
        inputs = [f"backbone_{stage}" for stage in conv_stages]
        inputs += [f"hidden_{i + 1}" for i in config.backbone_out_indices[2:]]
    elif backbone is not None:
        patch, native = _int(backbone.patch_size), _int(getattr(backbone, "image_size", config.image_size))
        inputs = _backbone_stage_names(backbone)
    else:
        patch, native = _int(config.patch_size), _int(config.image_size)
        # hidden_states[0] is the embedding output, so index i in backbone_out_indices is layer i + 1.
        inputs = [f"hidden_{i + 1}" for i in config.backbone_out_indices]
    default = ResizeRule("fixed", (native, native), patch, "bilinear", HALF_MEAN_STD, HALF_MEAN_STD, uint8=True,
                         output_filter="bicubic")
    rule = processor_rule(processor, default, input_size)
    if config.is_hybrid and rule.size != (native, native):
        # The hybrid embedding refuses any size but config.image_size (no position-embedding interpolation).
        height, width = rule.size
        asked = f"input_size={input_size}" if input_size else f"its image processor asks for {height}x{width}"
        raise KdcacheError(f"DPT-Hybrid only runs at {native}x{native} ({asked}): pass input_size={native}")
    return Architecture("dpt", rule, patch, "disparity", inputs, _neck_outputs(config))


def _depth_anything(config, input_size: int | None, processor: dict | None) -> Architecture:
    patch = _int(config.patch_size)
    native = _int(getattr(config.backbone_config, "image_size", 518))
    default = ResizeRule("keep-aspect", (native, native), patch, "bicubic", IMAGENET_MEAN, IMAGENET_STD, uint8=True,
                         output_filter="bicubic")
    rule = processor_rule(processor, default, input_size)
    space = "depth" if config.depth_estimation_type == "metric" else "disparity"
    inputs = _backbone_stage_names(config.backbone_config)
    return Architecture("depth_anything", rule, patch, space, inputs, _neck_outputs(config))


def _backbone_stage_names(backbone) -> list[str]:
    """Stage K of a ViT-like HF backbone is hidden_states[K] (stage 0 = embeddings), hence hidden_K."""
    prefix = "hidden" if backbone.model_type in _VIT_LIKE else "stage"
    return [f"{prefix}_{i}" for i in backbone.out_indices]


def _neck_outputs(config) -> list[str]:
    return [f"neck_{i}" for i in range(len(config.neck_hidden_sizes))]


def _int(value) -> int:
    return int(value[0] if isinstance(value, (list, tuple)) else value)

"""Tiny random-weight HF depth models in the real on-disk format (`save_pretrained`), for tests and benches.

Each builder seeds torch, so the same call gives the same weights; it writes config.json +
model.safetensors into `directory` and returns the path, to be loaded with `create_teacher("hf:" + path)`.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _save(model, directory) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(path)
    return path


def tiny_dpt_config(**overrides):
    """A DPT-Large-shaped config at toy scale: ViT 4 layers, hidden 32, patch 8, neck taps every layer."""
    from transformers import DPTConfig

    settings = dict(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32,
        patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, readout_type="project", reassemble_factors=[4, 2, 1, 0.5],
    )
    settings.update(overrides)
    return DPTConfig(**settings)


def make_tiny_dpt(directory, seed: int = 0, **overrides) -> Path:
    """DPTForDepthEstimation, ~60 k params, native input 32x32."""
    from transformers import DPTForDepthEstimation

    torch.manual_seed(seed)
    return _save(DPTForDepthEstimation(tiny_dpt_config(**overrides)), directory)


def make_tiny_dpt_hybrid(directory, seed: int = 0) -> Path:
    """DPT-Hybrid layout: a 3-stage BiT (ResNet) stem feeding a 4-layer ViT; runs at 64x64 only."""
    from transformers import BitConfig, DPTConfig, DPTForDepthEstimation

    bit = BitConfig(
        layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[16, 32, 64], embedding_size=8,
        out_features=["stage1", "stage2", "stage3"], global_padding="same", embedding_dynamic_padding=True,
        num_groups=4,
    )
    config = DPTConfig(
        is_hybrid=True, backbone_config=bit, backbone_featmap_shape=[1, 64, 4, 4], hidden_size=32,
        num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=64, patch_size=16,
        backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[16, 32, 32, 32], fusion_hidden_size=16,
        readout_type="project", reassemble_factors=[1, 1, 1, 0.5],
    )
    torch.manual_seed(seed)
    return _save(DPTForDepthEstimation(config), directory)


def make_tiny_depth_anything(directory, seed: int = 0, metric: bool = False) -> Path:
    """DepthAnythingForDepthEstimation on a 4-layer DINOv2 (hidden 32, patch 14), taps layers 1-4."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, mlp_ratio=2, image_size=56, patch_size=14,
        out_indices=[1, 2, 3, 4], apply_layernorm=True, reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone, patch_size=14, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8,
        depth_estimation_type="metric" if metric else "relative", max_depth=20 if metric else 1,
    )
    torch.manual_seed(seed)
    return _save(DepthAnythingForDepthEstimation(config), directory)


def make_bench_dpt(directory, seed: int = 0) -> Path:
    """A mid-size DPT (ViT hidden 256, 6 layers, 224x224, 6.6 M params): ~50-65 ms/image on one CPU core.

    Precompute's benchmark uses it as a stand-in teacher whose cost is realistic relative to data I/O.
    """
    from transformers import DPTForDepthEstimation

    config = tiny_dpt_config(
        hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024, image_size=224,
        patch_size=16, backbone_out_indices=[1, 3, 4, 5], neck_hidden_sizes=[32, 64, 128, 256],
        fusion_hidden_size=32,  # the DPT head runs at full input resolution; 32 keeps it from dominating
    )
    torch.manual_seed(seed)
    return _save(DPTForDepthEstimation(config), directory)


def make_dpt_large_arch(directory, seed: int = 0) -> Path:
    """DPT-Large's architecture (the published Intel/dpt-large config: ViT-L/16, 24 layers, 384x384, neck taps
    5/11/17/23) with random weights: 343 M params, 1.4 GB on disk. For GPU throughput checks, not for tests."""
    from transformers import DPTForDepthEstimation

    config = tiny_dpt_config(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096, image_size=384,
        patch_size=16, backbone_out_indices=[5, 11, 17, 23], neck_hidden_sizes=[256, 512, 1024, 1024],
        fusion_hidden_size=256, qkv_bias=True,
    )
    torch.manual_seed(seed)
    return _save(DPTForDepthEstimation(config), directory)

"""HF transformers depth models as teachers: DPT (Large, Hybrid, BEiT/DINOv2 backbones) and Depth Anything.

Features come from two hooks on `model.neck`: a forward *pre*-hook sees exactly the tensors the model
feeds its neck (DPT: raw ViT hidden states with CLS; Depth Anything: DINOv2 hidden states after the
backbone LayerNorm; DPT-Hybrid: two ResNet maps then ViT states), which are reshaped to the patch grid
with CLS / register tokens dropped; a forward hook returns the neck's fused outputs unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

from kdcache.console import log
from kdcache.errors import KdcacheError
from kdcache.devices import resolve_device
from kdcache.teachers.base import OUTPUT_SPACES, Teacher, resolve_precision
from kdcache.teachers.hf_arch import Architecture, read_architecture
from kdcache.teachers.hf_processor import processor_config
from kdcache.teachers.hf_source import HFSource, card_licence, load_pretrained, resolve_source, source_identity


class HFTeacher(Teacher):
    def __init__(self, name: str, model, source: HFSource, arch: Architecture, device, precision: str,
                 licence: str | None):
        super().__init__(name, device, precision, arch.rule)
        self.model = model
        self.arch = arch
        self.output_space = arch.output_space
        self.feature_layers = arch.feature_layers
        self.default_feature_layers = list(arch.neck_outputs)
        self.licence = licence
        self.params = sum(p.numel() for p in model.parameters())
        self.identity = {
            "name": name,
            **source_identity(source, model.config),
            "class": type(model).__name__,
            "output_space": self.output_space,
            "preprocess": self.preprocess,
            "precision": precision,
        }

    def _run(self, x: torch.Tensor, layers: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        grid = (x.shape[-2] // self.arch.patch_size, x.shape[-1] // self.arch.patch_size)
        captured: dict[str, Any] = {}
        hooks = []
        neck = self.model.neck
        if any(layer in self.arch.neck_inputs for layer in layers):
            hooks.append(neck.register_forward_pre_hook(_store_input(captured), with_kwargs=True))
        if any(layer in self.arch.neck_outputs for layer in layers):
            hooks.append(neck.register_forward_hook(_store_output(captured)))
        try:
            depth = self.model(pixel_values=x).predicted_depth
        finally:
            for hook in hooks:
                hook.remove()
        return depth, self._named_features(captured, layers, grid)

    def _named_features(self, captured: dict, layers: list[str], grid: tuple[int, int]) -> dict[str, torch.Tensor]:
        features = {}
        for layer in layers:
            if layer in self.arch.neck_inputs:
                tensor = captured["inputs"][self.arch.neck_inputs.index(layer)]
                features[layer] = tokens_to_grid(tensor, grid)
            else:
                features[layer] = captured["outputs"][self.arch.neck_outputs.index(layer)]
        return features


def tokens_to_grid(tensor: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, prefix + h*w, C) tokens -> (B, C, h, w), dropping CLS / register tokens; maps pass through."""
    if tensor.ndim == 4:
        return tensor
    batch, tokens, channels = tensor.shape
    height, width = grid
    prefix = tokens - height * width
    if prefix < 0:
        raise RuntimeError(f"{tokens} tokens cannot fill a {height}x{width} patch grid")
    return tensor[:, prefix:].transpose(1, 2).reshape(batch, channels, height, width)


def _store_input(captured: dict):
    def hook(module, args, kwargs):
        captured["inputs"] = list(args[0] if args else kwargs["hidden_states"])

    return hook


def _store_output(captured: dict):
    def hook(module, args, output):
        captured["outputs"] = list(output)

    return hook


def create_hf_teacher(
    ref: str,
    *,
    name: str | None = None,
    model_class=None,
    licence: str | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    input_size: int | None = None,
    output_space: str | None = None,
    revision: str | None = None,
) -> HFTeacher:
    """Load `ref` (hub id or local folder) as a teacher; every user error is one `KdcacheError` line."""
    if output_space is not None and output_space not in OUTPUT_SPACES:
        raise KdcacheError(f"unknown output space '{output_space}': use {' or '.join(OUTPUT_SPACES)}")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    source = resolve_source(ref, revision)
    if model_class is None:
        from transformers import AutoModelForDepthEstimation

        model_class = AutoModelForDepthEstimation
    model = load_pretrained(source, model_class)
    arch = read_architecture(model.config, input_size, output_space, processor_config(source))
    if not hasattr(model, "neck"):
        raise KdcacheError(f"'{ref}' has no DPT-style neck: use a DPT or Depth Anything checkpoint")
    teacher = HFTeacher(name or f"hf:{ref}", model.to(device), source, arch, device, precision,
                        licence or card_licence(source))
    _announce(teacher)
    return teacher


def _announce(teacher: HFTeacher) -> None:
    licence = teacher.licence or "unknown (check the model card)"
    note = " [yellow](non-commercial use only)[/]" if teacher.licence and "-nc" in teacher.licence.lower() else ""
    log(f"teacher {teacher.name}: {teacher.identity['source']}, {teacher.params / 1e6:.1f} M params, "
        f"{teacher.output_space}, input {teacher.rule.summary()}, licence {licence}{note}")

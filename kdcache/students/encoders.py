"""Student encoders: any timm backbone with `features_only=True`, with its ImageNet normalisation inside.

`pretrained=True` loads the backbone's ImageNet weights: from this machine's caches first (the HF hub cache under
HF_HOME / HF_HUB_CACHE, then the torch hub cache under TORCH_HOME, where timm keeps what it downloads), else from the
hub when `kdcache.hub` finds it reachable within seconds. Weights that cannot be had are a one-line refusal naming
`--no-pretrained`, never a silent start from scratch: a student trained from random weights is another experiment
(its peers, Hu et al.'s MobileNetV2, FastDepth and MobileViT, all start from ImageNet), so the user decides.
What was loaded is recorded (`TimmEncoder.initial_weights`) for the run's config.json, student.json and `kdcache eval`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import timm
import torch
from torch import nn

from kdcache.errors import KdcacheError
from kdcache.hub import hub_available, why_unavailable

# Weight file names timm publishes on the HF hub, safest first (safetensors never runs pickle).
_HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SCRATCH = {"init": "scratch"}


def find_local_weights(model_name: str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The ImageNet weights of timm model `model_name` already on disk (HF hub cache, then torch hub), or None."""
    from huggingface_hub import try_to_load_from_cache

    cfg = _pretrained_cfg(model_name)
    if cfg.get("hf_hub_id"):
        repo_id, _, revision = cfg["hf_hub_id"].partition("@")
        for filename in _HUB_WEIGHT_FILES:
            found = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
    if cfg.get("url"):
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])
        if candidate.is_file():
            return candidate
    return None


def _pretrained_cfg(model_name: str) -> dict:
    cfg = timm.models.get_pretrained_cfg(model_name)
    return {} if cfg is None else cfg.to_dict()


def weights_source(model_name: str) -> str | None:
    """Where timm publishes the ImageNet weights of `model_name` (a hub id or a URL), None if it has none."""
    cfg = _pretrained_cfg(model_name)
    return cfg.get("hf_hub_id") or cfg.get("url") or None


def _check_name(model_name: str) -> None:
    if timm.is_model(model_name):  # also accepts pretrained tags, e.g. resnet50.a1_in1k
        return
    close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise KdcacheError(f"unknown timm encoder '{model_name}'.{hint} Use any name from timm.list_models().")


def _missing_weights(model_name: str, source: str | None, reason: str) -> KdcacheError:
    from huggingface_hub import constants

    if source is None:
        return KdcacheError(f"timm encoder '{model_name}' has no published ImageNet weights: "
                            "train it from scratch with --no-pretrained (pretrained = false)")
    fetch = f"`hf download {source}`" if "://" not in source else source
    return KdcacheError(
        f"ImageNet weights for encoder '{model_name}' ({source}) are not on this machine (HF cache "
        f"{constants.HF_HUB_CACHE}, torch hub {torch.hub.get_dir()}) and {reason}: fetch them once on a connected "
        f"machine ({fetch}), or train from scratch with --no-pretrained (pretrained = false)")


def locate_weights(model_name: str) -> Path | None:
    """The ImageNet weights file of `model_name` on this machine, or None when the hub is reachable to download
    them; a one-line `KdcacheError` naming `--no-pretrained` when neither (asked before any work is done)."""
    _check_name(model_name)
    local = find_local_weights(model_name)
    source = weights_source(model_name)
    if local is None and (source is None or not hub_available()):
        raise _missing_weights(model_name, source, why_unavailable())
    return local


def create_timm_features(model_name: str, pretrained: bool, **timm_kwargs) -> tuple[nn.Module, dict]:
    """`timm.create_model(model_name, features_only=True)` and the record of its initial weights: `SCRATCH`, or
    `{"init": "imagenet", "source": hub id or URL, "file": the weights file}` (local first, see the module)."""
    _check_name(model_name)
    kwargs = dict(features_only=True, **timm_kwargs)
    if not pretrained:
        return timm.create_model(model_name, pretrained=False, **kwargs), dict(SCRATCH)
    source, local = weights_source(model_name), locate_weights(model_name)
    if local is not None:
        model = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": str(local)}, **kwargs)
    else:
        try:  # downloads into the caches above, where the next run finds them
            model = timm.create_model(model_name, pretrained=True, **kwargs)
        except Exception as err:  # any hub failure (a missing file, a full disk): one line, never a traceback
            raise _missing_weights(model_name, source, f"the download failed ({type(err).__name__})") from None
        local = find_local_weights(model_name)
    return model, {"init": "imagenet", "source": source, "file": None if local is None else str(local)}


def _drop_last_block(body: nn.Module, model_name: str) -> None:
    """Remove the last inverted-residual block of an EfficientNet-family feature net (MobileNetV2's 160->320).

    Hu et al.'s 1.7 M-parameter student stops MobileNetV2 after the 160-channel stage; timm's feature net
    always runs the final 320-channel block, so we cut it and retarget the last feature tap to the new end.
    """
    stage_out = getattr(body, "_stage_out_idx", None)
    blocks = getattr(body, "blocks", None)
    if stage_out is None or not isinstance(blocks, nn.Sequential) or max(stage_out) != len(blocks):
        raise KdcacheError(f"drop_last_block is only supported for timm EfficientNet-family encoders "
                           f"(mobilenetv2/v3, efficientnet), not '{model_name}': remove the option.")
    last_index = stage_out.pop(len(blocks))
    body.blocks = blocks[:-1]
    stage_out[len(body.blocks)] = last_index


def _input_multiple(body: nn.Module, stride: int) -> int:
    """Input sides must be multiples of this: the stride, times the patch size of MobileViT-style blocks
    (their unfold needs maps divisible by the patch; otherwise timm resizes inside, which ONNX cannot follow)."""
    patch = 1
    for module in body.modules():
        if type(module).__name__.startswith("MobileVit") and hasattr(module, "patch_size"):
            size = module.patch_size
            patch = max(patch, *(size if isinstance(size, tuple) else (size,)))
    return stride * patch


def _bad_out_indices(model_name: str, out_indices) -> str:
    with torch.device("meta"):  # counting the levels builds nothing real
        levels = len(timm.create_model(model_name, pretrained=False, features_only=True).feature_info)
    return (f"encoder '{model_name}' has {levels} feature levels: out_indices must be distinct integers from "
            f"{-levels} to {levels - 1}, got {list(out_indices)}.")


def _first_conv(body: nn.Module) -> nn.Conv2d:
    conv = next((m for m in body.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None or conv.in_channels != 3 or conv.groups != 1:
        raise KdcacheError("fold_norm needs an encoder whose first layer is a plain 3-channel convolution: "
                           "remove the option for this encoder.")
    return conv


@torch.no_grad()
def fold_normalisation(conv: nn.Conv2d, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Rewrite `conv` so that conv'(x) == conv((x - mean) / std): weights / std, bias - sum(w * mean / std).

    Exact except where the convolution zero-pads (its borders then see 0 instead of -mean/std), which only
    matters for weights trained with the normalisation outside; a `fold_norm` student is trained folded.
    """
    scale = (1.0 / std).view(1, 3, 1, 1)
    shift = (mean / std).view(1, 3, 1, 1)
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    new_bias = bias - (conv.weight * shift).sum(dim=(1, 2, 3))
    conv.weight.mul_(scale)
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


class TimmEncoder(nn.Module):
    """Normalise [0, 1] RGB with the backbone's own mean/std and return its feature maps, fine to coarse.

    `fold_norm=True` folds that normalisation into the first convolution instead (one elementwise pass over the
    input less at inference; ImageNet weights are folded once when they are loaded). `initial_weights` records
    what the weights started from (`create_timm_features`)."""

    def __init__(self, model_name: str, pretrained: bool = False, drop_last_block: bool = False,
                 out_indices: tuple[int, ...] | None = None, fold_norm: bool = False):
        super().__init__()
        timm_kwargs = {} if out_indices is None else {"out_indices": tuple(out_indices)}
        try:
            self.body, self.initial_weights = create_timm_features(model_name, pretrained, **timm_kwargs)
        except (IndexError, AssertionError):
            if out_indices is None:
                raise
            raise KdcacheError(_bad_out_indices(model_name, out_indices)) from None
        self._was_cut = bool(drop_last_block)
        if drop_last_block:
            _drop_last_block(self.body, model_name)
        self.channels, self.reductions = self._probe_channels()
        self.stride = max(self.reductions)
        self.input_multiple = _input_multiple(self.body, self.stride)
        cfg = self.body.pretrained_cfg
        # Buffers (not parameters) so they follow .to(device) but are not trained; persistent=False keeps
        # checkpoints free of constants that the architecture already defines.
        mean, std = torch.tensor(cfg.get("mean", (0.0,) * 3)), torch.tensor(cfg.get("std", (1.0,) * 3))
        self.fold_norm = bool(fold_norm)
        if self.fold_norm:
            fold_normalisation(_first_conv(self.body), mean, std)
            mean, std = torch.zeros(3), torch.ones(3)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)

    def _probe_channels(self) -> tuple[list[int], list[int]]:
        """Channels and strides of the maps: timm's feature_info, measured instead when the body was cut."""
        info = self.body.feature_info
        channels, reductions = list(info.channels()), list(info.reduction())
        if self._was_cut:
            device = next(self.body.parameters()).device  # works on the meta device too (complexity tables)
            was_training = self.body.training
            self.body.eval()
            with torch.no_grad():
                maps = self.body(torch.zeros(1, 3, 64, 64, device=device))
            self.body.train(was_training)
            channels = [int(m.shape[1]) for m in maps]
        return channels, reductions

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.fold_norm:
            return list(self.body(x))
        return list(self.body((x - self.mean) / self.std))


"""A HF teacher's input rule as its own image processor gives it (`preprocessor_config.json`), so the cache holds
what the model card's pipeline (`AutoImageProcessor` + model + `post_process_depth_estimation`) gives.

HF's DPT image processor (also Depth Anything's) resizes the uint8 image (torchvision, antialiased) with the
config's `resample` filter to `size`, or with `keep_aspect_ratio` to the aspect-keeping size nearest to it on the
`ensure_multiple_of` grid, then rescales to [0, 1] and normalises; the depth is resized back with bicubic
interpolation. The config is read from the teacher's folder or the HF cache; without it, the family's default
(`hf_arch`) stands in: what the published checkpoints' configs say.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kdcache.errors import KdcacheError
from kdcache.model_input import ResizeRule

PROCESSOR_FILE = "preprocessor_config.json"
_RESAMPLE = {2: "bilinear", 3: "bicubic"}  # PIL codes: BILINEAR, BICUBIC


def processor_config(source) -> dict | None:
    """The teacher's `preprocessor_config.json` as a dict, from its folder or the HF cache (None if absent)."""
    path = source.local / PROCESSOR_FILE if source.is_local else _hub_file(source)
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise KdcacheError(f"{path}: unreadable image processor config ({err}): delete it or fix it") from None


def _hub_file(source) -> Path | None:
    """A hub teacher's processor config: from the HF cache, else fetched beside the weights when the hub answers
    (`from_pretrained` of the model alone never fetches it, so without this a hub user would always get the
    family's fallback), else None."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.ref, PROCESSOR_FILE, revision=source.revision)
    if isinstance(cached, str):
        return Path(cached)
    from kdcache.hub import hub_available

    if cached is not None or not hub_available():  # known to be absent (the cache says so), or offline
        return None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(source.ref, PROCESSOR_FILE, revision=source.revision))
    except Exception:  # absent from the repo (EntryNotFoundError) or a failed fetch: the fallback stands in
        return None


def processor_rule(processor: dict | None, default: ResizeRule, input_size: int | None) -> ResizeRule:
    """The rule `processor` describes (`default` where it says nothing); `input_size` overrides the size."""
    rule = default if processor is None else _parse(processor, default)
    if input_size:
        rule = replace(rule, size=(input_size, input_size))
    return rule


def _parse(processor: dict, default: ResizeRule) -> ResizeRule:
    if processor.get("do_pad"):
        raise KdcacheError("the teacher's image processor pads its input (do_pad), which kdcache does not "
                           "reproduce: save its preprocessor_config.json with do_pad false")
    resample = processor.get("resample")
    if resample is not None and resample not in _RESAMPLE:
        raise KdcacheError(f"the teacher's image processor resamples with PIL filter {resample}: kdcache "
                           f"reproduces bilinear (2) and bicubic (3) only")
    size = _size(processor.get("size"), default.size)
    normalise = processor.get("do_normalize", True)
    keep = processor.get("keep_aspect_ratio", default.rule == "keep-aspect")
    multiple = int(processor.get("ensure_multiple_of") or 1)
    return ResizeRule(
        "keep-aspect" if keep else "fixed", size,
        multiple if keep else default.multiple,  # a fixed size only needs to fit the patch grid
        _RESAMPLE.get(resample, default.filter),
        tuple(processor.get("image_mean", default.mean)) if normalise else None,
        tuple(processor.get("image_std", default.std)) if normalise else None,
        uint8=True, output_filter="bicubic",
    )


def _size(value, default: tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict) and "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    if value is None:
        return default
    raise KdcacheError(f"the teacher's image processor size {value!r} is not HxW: kdcache reproduces "
                       f"{{'height': H, 'width': W}} sizes only")

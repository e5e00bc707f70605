"""Which student feature map is compared with which cached teacher layer.

Default: the k teacher layers, in the order given (shallow to deep, as the teacher lists them: `hidden_6,
hidden_12, ...` or `neck_0..3` fine to coarse), are matched with the k coarsest student maps, fine to coarse.
`pairs={layer: student_index}` overrides it. Student maps are average-pooled onto the teacher's (pooled) grid.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from kdcache.errors import KdcacheError


def pair_layers(student_channels: Sequence[int] | None, teacher_channels: Mapping[str, int] | None, loss: str,
                pairs: Mapping[str, int] | None = None) -> dict[str, int]:
    """{teacher layer: student map index}."""
    if not student_channels or not teacher_channels:
        raise KdcacheError(f"loss '{loss}' needs student feature channels and cached teacher features: precompute "
                           f"with --features LAYER,... and pass both to build_objective, or drop '{loss}'.")
    layers = list(teacher_channels)
    count = len(student_channels)
    if pairs:
        unknown = sorted(set(pairs) - set(layers))
        if unknown:
            raise KdcacheError(f"{loss} pairs name teacher layers not in the cache: {', '.join(unknown)} "
                               f"(cached: {', '.join(layers)}).")
        bad = {k: v for k, v in pairs.items() if not -count <= int(v) < count}
        if bad:
            raise KdcacheError(f"{loss} pairs use student map indices out of range {bad}: the student has {count}.")
        return {layer: int(index) % count for layer, index in pairs.items()}
    if len(layers) > count:
        raise KdcacheError(f"loss '{loss}': {len(layers)} teacher layers but the student has only {count} feature "
                           f"maps: cache fewer layers or give pairs={{layer: student_index}}.")
    first = count - len(layers)
    return {layer: first + j for j, layer in enumerate(layers)}


def module_key(layer: str) -> str:
    """nn.ModuleDict keys may not contain '.'; layer names from hooks might."""
    return re.sub(r"[^0-9A-Za-z_]", "_", layer)

"""Which targets a loss consumes ("gt", "teacher", "features"), so training reads only what is used.

The loss registry is asked first (a loss registered with `target=` / `targets=` metadata); then the
module the loss lives in (kdcache.losses keeps one concept per module: `gt`, `distill`, `features`);
unknown names fall back to a naming convention: `feat` -> features, `kd*`/`teacher`/`distill` -> teacher,
anything else ground truth.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def loss_targets(name: str) -> frozenset[str]:
    declared = _declared(name) or _by_module(name)
    if declared:
        return declared
    lowered = name.lower()
    if "feat" in lowered:
        return frozenset({"features"})
    if lowered.startswith("kd") or "teacher" in lowered or "distill" in lowered:
        return frozenset({"teacher"})
    return frozenset({"gt"})


def _declared(name: str) -> frozenset[str] | None:
    try:
        from kdcache.losses import LOSSES
    except ImportError:
        return None
    try:
        info = LOSSES.info(name)
    except Exception:  # noqa: BLE001 - unknown names are reported by build_objective with suggestions
        return None
    value = info.get("targets", info.get("target"))
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


_MODULE_TARGETS = {"gt": "gt", "distill": "teacher", "features": "features", "feature": "features"}


def _by_module(name: str) -> frozenset[str] | None:
    try:
        from kdcache.losses import LOSSES

        _, factory, _ = LOSSES.resolve(name)
    except Exception:  # noqa: BLE001
        return None
    module = getattr(factory, "__module__", "").rsplit(".", 1)[-1]
    target = _MODULE_TARGETS.get(module)
    return frozenset({target}) if target else None

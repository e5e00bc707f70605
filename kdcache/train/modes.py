"""Training modes: which batch sources a variant trains on and which kinds of loss it adds up.

`kdcache train --mode NAME`, a `[[variant]]`'s `mode` and the demo's student rows are these entries, so they
can never disagree. Hu et al.'s ablation first (the five rows every demo trains), then distillation of the cached
teacher features on top of KD + aux.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcache.errors import KdcacheError

# The weights each kind of loss stands for unless a config sets `<kind>_loss` (e.g. `kd_loss = {kd = 1, grad = 0.5}`).
GT_LOSS = {"silog": 1.0}
KD_LOSS = {"kd": 1.0}
# Attention transfer's loss is a mean over h*w cells of squared differences of unit vectors (~1e-3): Zagoruyko &
# Komodakis weight it by beta = 1e3, so do we.
LOSS_KINDS: dict[str, dict[str, float]] = {"gt": GT_LOSS, "kd": KD_LOSS, "feature": {"feature": 1.0},
                                           "attention": {"attention": 1000.0}}
# The per-kind tables a config may set, at the top level (every variant) or in one [[variant]].
LOSS_TABLE_KEYS = tuple(f"{kind}_loss" for kind in LOSS_KINDS)


@dataclass(frozen=True)
class TrainingMode:
    """The sources a variant sees and the kinds of loss (keys of LOSS_KINDS) it adds up."""

    sources: tuple[str, ...]  # source names; "aux" = every unlabeled source that no mode names (aux, aux-2, ...)
    losses: tuple[str, ...]
    description: str


MODES: dict[str, TrainingMode] = {
    "gt-only": TrainingMode(("labeled",), ("gt",), "student, GT loss only (the baseline, no teacher)"),
    "kd-labeled": TrainingMode(("labeled",), ("gt", "kd"), "student, GT + KD on labeled images"),
    "kd-labeled-aux": TrainingMode(("labeled", "aux"), ("gt", "kd"),
                                   "student, GT on labeled + KD on labeled and auxiliary images"),
    "kd-aux-only": TrainingMode(("aux",), ("kd",), "student, KD on auxiliary images only (no labels at all)"),
    "kd-labeled-aux-far": TrainingMode(("labeled", "aux-far"), ("gt", "kd"),
                                       "student, GT + KD with auxiliary images of a larger scene scale"),
    "kd-labeled-aux+feat": TrainingMode(("labeled", "aux"), ("gt", "kd", "feature"),
                                        "kd-labeled-aux + the cached teacher features through learned 1x1 adapters"),
    "kd-labeled-aux+attn": TrainingMode(("labeled", "aux"), ("gt", "kd", "attention"),
                                        "kd-labeled-aux + attention transfer on the cached teacher features"),
}
# Sources a mode names itself; every other unlabeled source is an "aux" source.
NAMED_SOURCES = {source for mode in MODES.values() for source in mode.sources} - {"aux"}
_HOW_TO_ADD = {"labeled": "--labeled SPLIT", "aux": "--aux SPLIT"}


def get_mode(name: str) -> TrainingMode:
    if name not in MODES:
        raise KdcacheError(f"unknown training mode '{name}': use one of {', '.join(MODES)}")
    return MODES[name]


def mode_sources(name: str, sources: list[str]) -> list[str]:
    """The run's sources (in their order) that mode `name` trains on."""
    wanted = set(get_mode(name).sources)
    chosen = [s for s in sources if s in wanted or ("aux" in wanted and s not in NAMED_SOURCES)]
    if not chosen:
        roles = get_mode(name).sources
        how = " or ".join(_HOW_TO_ADD.get(role, f"--aux {role}=SPLIT") for role in roles)
        raise KdcacheError(f"mode '{name}' needs a {' or '.join(roles)} source: pass {how}")
    return chosen


def mode_loss(name: str, tables: dict[str, dict[str, float]]) -> dict[str, float]:
    """The loss weights of mode `name`: its kinds' tables (`tables[kind]`, else LOSS_KINDS[kind]) merged."""
    return {loss: float(weight) for kind in get_mode(name).losses
            for loss, weight in tables.get(kind, LOSS_KINDS[kind]).items()}

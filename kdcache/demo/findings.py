"""Hu et al.'s findings as checks on the demo's measured numbers.

Each check compares AbsRel between named rows and says plainly whether the finding reproduced at this scale;
a finding that does not reproduce is reported as such, never hidden. Rows trained with several seeds carry
their mean and spread (the sample standard deviation over seeds): a win counts only when the gap between the
means exceeds the two rows' spreads added up (their mean +- spread intervals do not touch). A demo with one seed
has no measured spread; it falls back to a fixed `MARGIN` (relative) and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MARGIN = 0.01  # 1 % relative AbsRel: the bar when no spread was measured (one seed)


@dataclass
class Finding:
    claim: str
    holds: bool
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


def _abs_rel(rows: dict[str, dict], name: str) -> float:
    return float(rows[name]["abs_rel"])


def _spread(row: dict) -> float:
    return float(row.get("abs_rel_std") or 0.0)


def _measured(row: dict) -> str:
    value = f"{row['name']} {row['abs_rel']:.4f}"
    return value + (f" ± {_spread(row):.4f}" if row.get("seeds", 1) > 1 else "")


def _better(rows: dict[str, dict], winner: str, losers: list[str], claim: str) -> Finding:
    """`winner` has a lower AbsRel than every row in `losers`, by more than the seed spread."""
    w = rows[winner]
    seeded = any(rows[name].get("seeds", 1) > 1 for name in [winner, *losers])
    holds, parts = True, []
    for name in losers:
        loser = rows[name]
        gap = loser["abs_rel"] - w["abs_rel"]
        bar = _spread(w) + _spread(loser) if seeded else MARGIN * loser["abs_rel"]
        holds = holds and gap > bar
        test = f"gap {gap:.4f} {'>' if gap > bar else '<='} spread {bar:.4f}" if seeded else "one seed: 1 % bar"
        parts.append(f"{_measured(loser)} ({-gap / loser['abs_rel']:+.1%}; {test})")
    return Finding(claim, holds, f"AbsRel {_measured(w)} vs {', '.join(parts)}")


# Hu et al.'s findings and two sanity checks of the recipe: (claim, winner, losers).
FINDINGS: list[tuple[str, str, list[str]]] = [
    ("The big teacher beats the small GT-only baseline", "teacher", ["gt-only"]),
    ("KD with auxiliary images beats the GT-only baseline", "kd-labeled-aux", ["gt-only"]),
    ("Auxiliary unlabeled images help: KD on labeled + aux beats KD on labeled only", "kd-labeled-aux",
     ["kd-labeled"]),
    ("Scene scale matters: aux images of a similar scale beat aux images of a larger scene scale", "kd-labeled-aux",
     ["kd-labeled-aux-far"]),
    ("Labeled + aux together beat either alone", "kd-labeled-aux", ["kd-labeled", "kd-aux-only"]),
]


def check_findings(rows: list[dict]) -> list[Finding]:
    """Each finding whose rows were all trained, as a check on the measured numbers."""
    by_name = {row["name"]: row for row in rows}
    return [_better(by_name, winner, losers, claim) for claim, winner, losers in FINDINGS
            if all(name in by_name for name in [winner, *losers])]


def unchecked_findings(rows: list[dict]) -> list[str]:
    """The findings this experiment's rows cannot check (it left out one of their rows)."""
    names = {row["name"] for row in rows}
    return [claim for claim, winner, losers in FINDINGS if not {winner, *losers} <= names]


# Rows that add a loss on the cached teacher features, checked against the KD + aux row they extend.
FEATURE_ROWS = {
    "kd-labeled-aux+feat": "Distilling the cached teacher features (learned adapters) helps KD + aux",
    "kd-labeled-aux+attn": "Attention transfer on the cached teacher features helps KD + aux",
}


def check_feature_rows(rows: list[dict]) -> list[Finding]:
    """Does each feature row that was trained beat KD + aux alone (beyond the seed spread)?"""
    by_name = {row["name"]: row for row in rows}
    return [_better(by_name, name, ["kd-labeled-aux"], claim) for name, claim in FEATURE_ROWS.items() if name in by_name]


# The KD + aux student the targets judge: `kd-labeled-aux` unless the config's `recommended` row (e.g. one that also
# distils the cached features) is the recipe it recommends. The scene-scale target always compares the plain rows.
RECOMMENDED = "{recommended}"

# A scale's config may set numeric targets (`[targets]` in configs/demo-full.toml): each is a ratio of two
# measured numbers with a limit, checked and reported like a finding but without the noise margin, since the
# limit itself is the bar. name -> (claim with {limit}, numerator row and field, denominator row and field, at_most)
THRESHOLDS: dict[str, tuple[str, tuple[str, str], tuple[str, str], bool]] = {
    "kd_aux_vs_gt_only": ("KD + aux AbsRel <= {limit:g} x the GT-only student's",
                          (RECOMMENDED, "abs_rel"), ("gt-only", "abs_rel"), True),
    "kd_aux_vs_teacher": ("KD + aux AbsRel within {over:.0%} of the teacher's",
                          (RECOMMENDED, "abs_rel"), ("teacher", "abs_rel"), True),
    "student_params_vs_teacher": ("The student has <= {limit:.0%} of the teacher's parameters",
                                  (RECOMMENDED, "params"), ("teacher", "params"), True),
    "kd_aux_far_vs_kd_aux": ("KD + aux-far helps less than KD + aux (AbsRel ratio > {limit:g})",
                             ("kd-labeled-aux-far", "abs_rel"), ("kd-labeled-aux", "abs_rel"), False),
}


def check_targets(rows: list[dict], targets: dict[str, float], recommended: str = "kd-labeled-aux") -> list[Finding]:
    """Each configured target as a met / missed check with the measured ratio."""
    by_name = {row["name"]: row for row in rows}
    checks = []
    for name, limit in targets.items():
        template, (top_row, top_field), (bottom_row, bottom_field), at_most = THRESHOLDS[name]
        top_row = top_row.format(recommended=recommended)
        if top_row not in by_name or bottom_row not in by_name:
            continue  # e.g. the scene-scale target of an experiment without the aux-far row
        claim = template.format(limit=limit, over=limit - 1)
        top, bottom = by_name[top_row][top_field], by_name[bottom_row][bottom_field]
        if top is None or not bottom:
            checks.append(Finding(claim, False, f"{top_field} not measured"))
            continue
        ratio = float(top) / float(bottom)
        holds = ratio <= limit if at_most else ratio > limit
        evidence = f"{top_row} / {bottom_row} {top_field} = {top:.4g} / {bottom:.4g} = {ratio:.3f}"
        seeds = max(by_name[top_row].get("seeds", 1), by_name[bottom_row].get("seeds", 1))
        if seeds > 1 and top_field == "abs_rel":
            evidence += f", means over {seeds} seeds"
        checks.append(Finding(claim, holds, evidence))
    return checks

"""Hu et al.'s findings as checks on the demo's measured numbers.

Each check compares AbsRel between named rows and says plainly whether the finding reproduced at this scale;
a finding that does not reproduce is reported as such, never hidden. A win by less than `MARGIN` (relative)
is within the run-to-run noise of a short CPU training and counts as a tie, not as a reproduction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

MARGIN = 0.01  # 1 % relative AbsRel


@dataclass
class Finding:
    claim: str
    holds: bool
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


def _abs_rel(rows: dict[str, dict], name: str) -> float:
    return float(rows[name]["abs_rel"])


def _better(rows: dict[str, dict], winner: str, losers: list[str], claim: str) -> Finding:
    """`winner` has a lower AbsRel than every row in `losers`."""
    w = _abs_rel(rows, winner)
    others = {name: _abs_rel(rows, name) for name in losers}
    holds = all(w < value * (1 - MARGIN) for value in others.values())
    parts = ", ".join(f"{name} {value:.4f} ({(w - value) / value:+.1%})" for name, value in others.items())
    return Finding(claim, holds, f"AbsRel {winner} {w:.4f} vs {parts}")


def check_findings(rows: list[dict]) -> list[Finding]:
    """The demo's checks: two sanity checks of the recipe, then Hu et al.'s three findings."""
    by_name = {row["name"]: row for row in rows}
    return [
        _better(by_name, "teacher", ["gt-only"], "The big teacher beats the small GT-only baseline"),
        _better(by_name, "kd-labeled-aux", ["gt-only"], "KD with auxiliary images beats the GT-only baseline"),
        _better(
            by_name,
            "kd-labeled-aux",
            ["kd-labeled"],
            "Auxiliary unlabeled images help: KD on labeled + aux beats KD on labeled only",
        ),
        _better(
            by_name,
            "kd-labeled-aux",
            ["kd-labeled-aux-far"],
            "Scene scale matters: aux images of a similar scale beat aux images of a 3-4x larger scale",
        ),
        _better(
            by_name,
            "kd-labeled-aux",
            ["kd-labeled", "kd-aux-only"],
            "Labeled + aux together beat either alone",
        ),
    ]


# A scale's config may set numeric targets (`[targets]` in configs/demo-full.toml): each is a ratio of two
# measured numbers with a limit, checked and reported like a finding but without the noise margin, since the
# limit itself is the bar. name -> (claim with {limit}, numerator row and field, denominator row and field, at_most)
TARGETS: dict[str, tuple[str, tuple[str, str], tuple[str, str], bool]] = {
    "kd_aux_vs_gt_only": ("KD + aux AbsRel <= {limit:g} x the GT-only student's",
                          ("kd-labeled-aux", "abs_rel"), ("gt-only", "abs_rel"), True),
    "kd_aux_vs_teacher": ("KD + aux AbsRel within {over:.0%} of the teacher's",
                          ("kd-labeled-aux", "abs_rel"), ("teacher", "abs_rel"), True),
    "student_params_vs_teacher": ("The student has <= {limit:.0%} of the teacher's parameters",
                                  ("kd-labeled-aux", "params"), ("teacher", "params"), True),
    "kd_aux_far_vs_kd_aux": ("KD + aux-far helps less than KD + aux (AbsRel ratio > {limit:g})",
                             ("kd-labeled-aux-far", "abs_rel"), ("kd-labeled-aux", "abs_rel"), False),
}


def check_targets(rows: list[dict], targets: dict[str, float]) -> list[Finding]:
    """Each configured target as a met / missed check with the measured ratio."""
    by_name = {row["name"]: row for row in rows}
    checks = []
    for name, limit in targets.items():
        template, (top_row, top_field), (bottom_row, bottom_field), at_most = TARGETS[name]
        claim = template.format(limit=limit, over=limit - 1)
        top, bottom = by_name[top_row][top_field], by_name[bottom_row][bottom_field]
        if top is None or not bottom:
            checks.append(Finding(claim, False, f"{top_field} not measured"))
            continue
        ratio = float(top) / float(bottom)
        holds = ratio <= limit if at_most else ratio > limit
        evidence = f"{top_row} / {bottom_row} {top_field} = {top:.4g} / {bottom:.4g} = {ratio:.3f}"
        checks.append(Finding(claim, holds, evidence))
    return checks

"""Recipe levers of the demo's KD + aux student, measured on the validation slice against seed noise.

Runs on a finished (or at least teacher-cached) `kdcache demo` folder and reuses its teacher cache: every lever
is one or more `kdcache train` passes derived from the demo's own students config for each seed, so a pass on
the demo's batch layout sees exactly the batches, augmentation and initialisation of the demo's seed (its
`kd-labeled-aux` row is the paired baseline). Only the validation split picks anything; the test rooms are never
read here.

    python bench/demo_levers.py --scale full --out kdcache-demo-full --seeds 0,1 --lever kd-space --lever length
    python bench/demo_levers.py --scale full --out kdcache-demo-full --seeds 0,1 --lever cache:flip-tta=PATH
    python bench/demo_levers.py --scale full --out kdcache-demo-full --seeds 0,1,2 --lever 'aux:synth-aux[:16000]=PATH'

Levers:
  kd-space         KD in log depth (log-l1) / metric disparity / scale-and-shift-invariant disparity
  kd-weight        the demo's KD loss at 2x and 0.5x weight
  ema              an exponential moving average of the weights (decay 0.999) for gt-only and KD + aux
  mix              labeled : aux rows of the KD + aux student at 1:3 and 3:1 (same rows and steps per run)
  length           2x the training steps, for gt-only and KD + aux
  2x:LEVER         LEVER's passes at 2x the training steps (e.g. '2x:cache:teacher12=PATH': both levers at once)
  cache:NAME=PATH  KD + aux on another teacher cache of the same images (flip-TTA targets, another teacher)
  aux:SPEC=PATH    KD + aux with another aux split (e.g. twice the rooms), from a teacher cache PATH holding it
                   and the demo's labeled and validation splits; the demo's labeled and aux rows per step and steps
Prints one table (validation AbsRel per seed, mean ± sd, and the paired change against the demo's KD + aux row
of the same seed) and writes it to --json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

from kdcache.demo import load_plan
from kdcache.demo.steps import DemoSteps
from kdcache.store.layout import group_name
from kdcache.train import train
from kdcache.train.train_config import TrainConfig, source_counts
from kdcache.train.curves import read_metrics

BASELINE = "kd-labeled-aux"


def best_val(run_dir: Path) -> float | None:
    values = [r["abs_rel"] for r in read_metrics(run_dir / "metrics.jsonl") if r.get("kind") == "val"]
    return min(values) if values else None


def _variant(base: dict, name: str, **changes) -> dict:
    """A copy of demo row `base` named `name`; `baseline` (dropped before training) names the row it is paired with."""
    variant = copy.deepcopy(base)
    variant["name"], variant["baseline"] = name, base.get("baseline", base["name"])
    for key, value in changes.items():
        variant[key] = value
    return variant


def _kd_variant(config: dict, name: str, kd_weight: float, kd_options: dict) -> dict:
    base = next(v for v in config["variant"] if v["name"] == BASELINE)
    loss = {**base["loss"], "kd": kd_weight}
    return _variant(base, name, loss=loss, loss_options={"kd": kd_options})


def lever_passes(lever: str, config: dict) -> list[tuple[str, dict]]:
    """(pass name, training config) for one lever on one seed's demo students config."""
    if lever.startswith("2x:"):  # levers may interact: a better teacher may pay only once the student trains longer
        return _at_twice_the_steps(lever_passes(lever[len("2x:"):], {**config, "epochs": 2 * config["epochs"]}))
    base = next(v for v in config["variant"] if v["name"] == BASELINE)
    weight = base["loss"]["kd"]
    if lever == "kd-space":
        variants = [_kd_variant(config, "kd-space=log-depth-l1 (w 10)", 10 * weight, {"depth_loss": "log-l1"}),
                    _kd_variant(config, "kd-space=disparity (w 10)", 10 * weight, {"space": "disparity"}),
                    _kd_variant(config, "kd-space=ssi (w 10)", 10 * weight, {"space": "ssi"})]
        return [("kd-space", {**config, "variant": variants})]
    if lever == "kd-weight":
        options = base.get("loss_options", {}).get("kd", {})
        variants = [_kd_variant(config, f"kd weight x{f:g}", f * weight, options) for f in (2.0, 0.5)]
        return [("kd-weight", {**config, "variant": variants})]
    if lever == "ema":
        keep = [v for v in config["variant"] if v["name"] in ("gt-only", BASELINE)]
        return [("ema", {**config, "variant": [_variant(v, f"{v['name']} ema 0.999", ema=0.999) for v in keep]})]
    if lever == "length":
        keep = [v for v in config["variant"] if v["name"] in ("gt-only", BASELINE)]
        return [("length", {**config, "epochs": 2 * config["epochs"],
                            "variant": [_variant(v, f"{v['name']} 2x steps") for v in keep]})]
    if lever == "mix":
        return _mix_passes(config, base)
    if lever.startswith("cache:"):
        name, path = _named_path(lever, "cache", "NAME", "flip-tta=cache/flip.zarr")
        return [(f"cache-{name}", {**config, "cache": path, "variant": [_variant(base, f"{BASELINE} on {name}")]})]
    if lever.startswith("aux:"):
        return [_aux_pass(config, base, *_named_path(lever, "aux", "SPEC", "synth-aux[:16000]=cache/aux16k.zarr"))]
    raise SystemExit(f"unknown lever {lever!r}: kd-space, kd-weight, ema, mix, length, cache:NAME=PATH or "
                     "aux:SPEC=PATH")


def _at_twice_the_steps(passes: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """Passes already derived from a doubled-epochs config, named (and their variants) as such."""
    return [(f"2x-{name}", {**config, "variant": [{**v, "name": f"{v['name']} 2x steps"} for v in config["variant"]]})
            for name, config in passes]


def _named_path(lever: str, prefix: str, what: str, example: str) -> tuple[str, str]:
    """(WHAT, PATH) of a `PREFIX:WHAT=PATH` lever; both parts are required."""
    name, _, path = lever[len(prefix) + 1:].partition("=")
    if not name or not path:
        raise SystemExit(f"write the {prefix} lever as {prefix}:{what}=PATH, e.g. '{prefix}:{example}'")
    return name, path


def _kd_aux_rows(config: dict) -> tuple[int, int, int]:
    """(labeled, aux) rows of one seed's demo batch and the demo's step count: what a KD + aux pass keeps."""
    from kdcache.train.cache_plan import inspect_cache, steps_per_epoch, total_steps

    parsed = TrainConfig.from_dict(copy.deepcopy(config))
    counts = source_counts(parsed)
    return counts["labeled"], counts["aux"], total_steps(parsed, steps_per_epoch(parsed, inspect_cache(parsed), 1))


def _kd_aux_pass(config: dict, variant: dict, sources: dict, labeled: int, aux: int, steps: int) -> dict:
    """A pass of one KD + aux variant on `labeled` + `aux` rows per step for `steps` steps."""
    rows = labeled + aux
    return {**config, "sources": sources, "mix": {"labeled": labeled / rows, "aux": aux / rows},
            "batch_size": rows, "steps": steps, "variant": [variant]}


def _mix_passes(config: dict, base: dict) -> list[tuple[str, dict]]:
    """The KD + aux rows of a demo batch, split 1:3 and 3:1 between labeled and aux; the demo's step count."""
    labeled_rows, aux_rows, steps = _kd_aux_rows(config)
    rows = labeled_rows + aux_rows
    sources = {k: v for k, v in config["sources"].items() if k in ("labeled", "aux")}
    passes = []
    for labeled_share in (0.25, 0.75):
        labeled = round(rows * labeled_share)
        variant = _variant(base, f"mix labeled {labeled} : aux {rows - labeled}")
        passes.append((f"mix-{labeled}-{rows - labeled}",
                       _kd_aux_pass(config, variant, sources, labeled, rows - labeled, steps)))
    return passes


def _aux_pass(config: dict, base: dict, spec: str, path: str) -> tuple[str, dict]:
    """KD + aux with the aux split `spec` from the teacher cache `path`; the demo's rows per step and steps."""
    labeled, aux, steps = _kd_aux_rows(config)
    sources = {"labeled": config["sources"]["labeled"], "aux": spec}
    variant = _variant(base, f"{BASELINE} with aux {spec}")
    return f"aux-{group_name(spec)}", _kd_aux_pass({**config, "cache": path}, variant, sources, labeled, aux, steps)


def run_pass(config: dict, out: Path) -> float:
    variants = [{k: v for k, v in variant.items() if k != "baseline"} for variant in config["variant"]]
    config = {**config, "out": str(out), "variant": variants}
    started = time.perf_counter()
    has_run = (out / "config.json").exists() or any(out.glob("*/config.json"))
    train({**config, "resume": True} if has_run else config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="full")
    parser.add_argument("--config", default=None, help="a demo TOML instead of configs/demo-<scale>.toml")
    parser.add_argument("--out", required=True, help="the demo's output folder (its teacher cache is reused)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--lever", action="append", default=[], help="repeatable; none: only refresh and print")
    parser.add_argument("--json", default=None, help="default: <out>/levers/levers.json")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    plan = load_plan(args.scale, args.config)
    out = Path(args.out)
    steps = DemoSteps(plan, out, workers=args.workers)
    seeds = [int(s) for s in args.seeds.split(",")]
    path = Path(args.json) if args.json else out / "levers" / "levers.json"
    table = json.loads(path.read_text()) if path.exists() else {"passes": {}, "values": {}, "baseline": {}}
    known = {int(seed) for values in table["values"].values() for seed in values}
    for seed in sorted(known | set(seeds)):  # the demo's rows may have finished since the last call
        for row in plan.rows:
            table["values"].setdefault(f"demo {row}", {})[str(seed)] = best_val(steps.students_run_dir(seed) / row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=2))
    for seed in seeds:
        for lever in args.lever:
            for pass_name, config in lever_passes(lever, steps.students_config(seed)):
                folder = out / "levers" / f"{pass_name}-seed{seed}"
                seconds = run_pass(config, folder)
                table["passes"][f"{pass_name}-seed{seed}"] = round(seconds, 1)
                for variant in config["variant"]:
                    run = folder if len(config["variant"]) == 1 else folder / variant["name"]
                    table["values"].setdefault(variant["name"], {})[str(seed)] = best_val(run)
                    table["baseline"][variant["name"]] = f"demo {variant['baseline']}"
                path.write_text(json.dumps(table, indent=2))
    print(render(table))


def _seed_values(per_seed: dict) -> dict[int, float]:
    return {int(k): v for k, v in per_seed.items() if v is not None}


def render(table: dict) -> str:
    """Markdown: every demo row and lever variant; lever variants also as the paired change against their row."""
    lines = ["| variant | val AbsRel per seed | mean ± sd | paired change vs its demo row (mean ± sd) |",
             "| --- | --- | ---: | ---: |"]
    for name, per_seed in table["values"].items():
        values = _seed_values(per_seed)
        if not values:
            continue
        mean = statistics.fmean(values.values())
        sd = statistics.stdev(values.values()) if len(values) > 1 else 0.0
        row = table["baseline"].get(name)
        baseline = _seed_values(table["values"].get(row, {})) if row else {}
        changes = [values[s] / baseline[s] - 1 for s in values if s in baseline]
        change = "" if not changes else (f"{statistics.fmean(changes):+.1%}" +
                                         (f" ± {statistics.stdev(changes):.1%}" if len(changes) > 1 else "") +
                                         f" vs {row[len('demo '):]}")
        seeds = ", ".join(f"{values[s]:.4f} (s{s})" for s in sorted(values))
        lines.append(f"| {name} | {seeds} | {mean:.4f} ± {sd:.4f} | {change} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Every student preset, accuracy against speed, in one picture: docs/images/students_pareto.png.

    nice -n 10 python bench/pareto.py [--out runs/pareto] [--student NAME ...] [--phase PHASE ...]
        [--scale full] [--extra-seed N] [--length L]

`--scale` distils from another demo scale's teacher cache (`[scales.S]` of the config holds what differs there);
`--extra-seed` and `--length` train the presets again as PRESET@seedN / PRESET@xL (L x the epochs: a lever).

Phases (all by default, in this order; each one stores its figures in OUT/results.json and skips what is done):
  teacher  steps 1-3 of `kdcache demo --scale S` (configs/pareto.toml): GT store, teacher, teacher cache;
  train    every preset distilled from that cache with one recipe (OUT/runs/<preset>);
  eval     AbsRel and δ1 of every run and of the teacher on the demo's test split (metric protocol);
  speed    each run exported to ONNX (`kdcache export`) and timed under onnxruntime in a fresh process
           (kdcache.export.ort_speed: 2 threads, batch 1, 240x320, median of 50 runs after 10 warm-ups), in
           `--rounds` interleaved rounds; the median over rounds is kept, with every round's figure;
  report   the plot, the markdown table (also written into docs/benchmarks.md between the pareto markers),
           and, for each FPS budget, the most accurate preset that meets it.
Run `speed` when `uptime` shows a quiet machine (the load average is printed with the figures); `--remeasure`
times every model again. The last line is `realtime_60=<preset>`.
"""

from __future__ import annotations

import argparse
import json
import os
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("teacher", "train", "eval", "speed", "report")
TEACHER = "teacher"
MARKERS = ("<!-- pareto table: written by bench/pareto.py -->", "<!-- end of pareto table -->")


class Results(dict):
    """OUT/results.json as one process read it; `as_loaded` keeps that reading (and, after each save, what this
    process wrote), to tell this process's changes apart from figures it merely carries."""

    def __init__(self, entries: dict):
        super().__init__(entries)
        self.as_loaded = _snapshot(entries)


def _snapshot(entries: dict) -> dict:
    """A deep copy in results.json's own form (tuples become lists), so comparisons see what the file would hold."""
    return json.loads(json.dumps(entries, default=str))


def load_results(out: Path) -> Results:
    path = out / "results.json"
    return Results(json.loads(path.read_text()) if path.exists() else {})


def save_results(out: Path, results: dict) -> None:
    """Write into OUT/results.json only the fields this process changed since it loaded the file: phases run in
    other processes meanwhile (a training pass beside an eval or a speed phase) keep what they wrote."""
    from kdcache.atomic import write_text

    loaded = getattr(results, "as_loaded", {})
    merged = dict(load_results(out))
    for name, entry in results.items():
        before = loaded.get(name)
        if not isinstance(entry, dict):
            merged[name] = entry if entry != before else merged.get(name, entry)
            continue
        changed = {field: value for field, value in entry.items() if (before or {}).get(field) != value}
        merged[name] = {**merged.get(name, {}), **changed}
    write_text(out / "results.json", json.dumps(merged, indent=2, default=str))
    if isinstance(results, Results):  # in step with what it wrote; the fields it only carries stay unchanged
        results.as_loaded = _snapshot(results)


def scaled_config(config: dict, scale: str | None) -> dict:
    """The config for one demo scale: `[scales.<scale>]` of the TOML holds only what differs there (issue 28's
    `--scale full` trains the demo's own student stage, 10 epochs, from the full demo's teacher cache)."""
    overrides = config.pop("scales", {})
    if scale is None or scale == config["demo_scale"]:
        return config
    return {**config, "demo_scale": scale, **overrides.get(scale, {})}


def demo_steps(config: dict, out: Path):
    from kdcache.demo.plan import load_plan
    from kdcache.demo.steps import DemoSteps

    plan = load_plan(config["demo_scale"])
    return plan, DemoSteps(plan, out / f"demo-{plan.scale}")


def phase_teacher(config: dict, out: Path, names: list[str], results: dict) -> None:
    from kdcache.demo.steps import run_steps

    plan, steps = demo_steps(config, out)
    run_steps(steps.teacher_steps(), steps.out, {})


def _run_dir(out: Path, name: str) -> Path:
    """OUT/runs/<preset>, or the demo's teacher run (OUT/demo-<scale>/runs/teacher) for the teacher."""
    if name == TEACHER:
        found = sorted(out.glob("demo-*/runs/teacher"))
        return found[0] if found else out / "no-teacher-yet"
    return out / "runs" / name


def run_name(preset: str, seed: int = 0, length: float = 1) -> str:
    """A run's key in results.json and its folder: PRESET, PRESET@x2 (twice the epochs), PRESET@seed1, PRESET@x2@seed1."""
    return preset + (f"@x{length:g}" if length != 1 else "") + (f"@seed{seed}" if seed else "")


def parse_run_name(name: str) -> tuple[str, int, float]:
    """(preset, seed, length) of a `run_name`."""
    preset, *tags = name.split("@")
    seed = next((int(t[4:]) for t in tags if t.startswith("seed")), 0)
    length = next((float(t[1:]) for t in tags if t.startswith("x")), 1.0)
    return preset, seed, length


def phase_train(config: dict, out: Path, names: list[str], results: dict) -> None:
    from kdcache.console import log
    from kdcache.train import train

    _, steps = demo_steps(config, out)
    for name in names:
        run = _run_dir(out, name)
        entry = results.setdefault(name, {})
        if entry.get("train"):
            continue
        preset, seed, length = parse_run_name(name)
        epochs = round(config["epochs"] * length)
        train_config = steps.distil_config(preset, config["recipe"], run, epochs=epochs)
        train_config["seed"] = seed
        if (run / "config.json").exists():
            train_config["resume"] = True
        log(f"[bold]pareto:[/] training {name} ({config['recipe']}, {epochs} epochs) -> {run}")
        result = train(train_config)[0]
        entry["train"] = {"run": str(run), "wall_time_s": result.wall_time_s, "steps": result.steps,
                          "best_val_abs_rel": result.best_val_abs_rel, "recipe": config["recipe"],
                          "epochs": epochs}
        save_results(out, results)


def phase_eval(config: dict, out: Path, names: list[str], results: dict) -> None:
    from kdcache.evaluate import EvalConfig, evaluate

    plan, _ = demo_steps(config, out)
    finished = [TEACHER] if _run_dir(out, TEACHER).exists() else []
    finished += [n for n in names if results.get(n, {}).get("train")]  # never a run still training
    todo = [n for n in finished if not results.get(n, {}).get("eval")]
    if not todo:
        return
    rows = evaluate(EvalConfig([str(_run_dir(out, n)) for n in todo], plan.splits["test"], [plan.eval_protocol],
                               efficiency=False, split_options=plan.split_options))
    for name, row in zip(todo, rows):
        metrics = row["metrics"]
        results.setdefault(name, {})["eval"] = {"abs_rel": metrics["abs_rel"], "d1": metrics["d1"],
                                                "rmse": metrics["rmse"], "split": plan.splits["test"],
                                                "protocol": row["protocol"]}
    save_results(out, results)


def _load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def export_for_speed(out: Path, name: str, size: tuple[int, int]) -> tuple[Path, str]:
    """The trained run's ONNX file (random weights when the preset is not trained yet: same graph, same cost)."""
    from kdcache.export import export_onnx

    run = _run_dir(out, name)
    weights = "trained"
    if not (run / "checkpoints").exists() and not (run / "model.safetensors").exists():
        import torch

        from kdcache.students import create_student, save_student

        torch.manual_seed(0)
        run = out / "untrained" / name
        save_student(create_student(name), run, {"resolution": list(size)})
        weights = "random init"
    target = out / "onnx" / f"{name}.onnx"
    stamp = target.with_suffix(".from")
    if not target.exists() or not stamp.exists() or stamp.read_text() != weights:
        export_onnx(run, target, input_size=size)
        stamp.write_text(weights)
    return target, weights


def phase_speed(config: dict, out: Path, names: list[str], results: dict, remeasure: bool = False,
                rounds: int = 3, settings=None) -> None:
    """Export every model, then time them in `rounds` interleaved rounds (each a fresh process, median of 50):
    the figure kept is the median over rounds, so a burst of load from other jobs hits every model alike."""
    import statistics

    from kdcache.console import log
    from kdcache.export import SpeedSettings, measure_isolated

    settings = settings or SpeedSettings()
    todo = {}
    for name in [TEACHER, *names]:
        if name == TEACHER and not _run_dir(out, name).exists():
            continue
        path, weights = export_for_speed(out, name, settings.size)
        if remeasure or results.get(name, {}).get("speed", {}).get("weights") != weights:
            todo[name] = (path, weights)
    measured: dict[str, list[dict]] = {name: [] for name in todo}
    for round_index in range(rounds):
        for name, (path, _) in todo.items():
            speed = measure_isolated(path, settings)
            speed["load_average"] = _load_average()
            measured[name].append(speed)
            log(f"round {round_index + 1}/{rounds} {name}: {speed['latency_ms']:.1f} ms = {speed['fps']:.1f} FPS "
                f"(min {speed['latency_min_ms']:.1f} ms), load {speed['load_average']}")
    for name, runs in measured.items():
        latency = statistics.median(r["latency_ms"] for r in runs)
        results.setdefault(name, {})["speed"] = {
            **settings.__dict__, "size": list(settings.size), "weights": todo[name][1], "onnx": str(todo[name][0]),
            "latency_ms": latency, "fps": 1e3 / latency, "rounds": [r["latency_ms"] for r in runs],
            "latency_min_ms": min(r["latency_min_ms"] for r in runs),
            "peak_memory_mib": statistics.median(r["peak_memory_mib"] for r in runs),
            "load_average": [r["load_average"] for r in runs]}
    save_results(out, results)


def _complexity(results: dict, names: list[str]) -> None:
    from kdcache.students import describe_students

    for row in describe_students(names, (240, 320)):
        results.setdefault(row["name"], {})["complexity"] = {"params_m": row["params"] / 1e6, "gflops": row["gflops"]}


def best_run_fps(speed: dict) -> float:
    """FPS of the fastest single run: on a machine other jobs load, the closest figure to an idle machine's."""
    return 1e3 / speed.get("latency_min_ms", speed["latency_ms"])


def budget_picks(results: dict, names: list[str], budgets: list[float], best_run: bool = False) -> dict[int, str | None]:
    """For each FPS budget, the most accurate (lowest AbsRel) preset whose measured FPS (median, or the best run's
    with `best_run`) meets it."""
    scored = [(results[n]["eval"]["abs_rel"], n) for n in names
              if results.get(n, {}).get("eval") and results[n].get("speed")]
    picks = {}
    for budget in budgets:
        fps = (lambda n: best_run_fps(results[n]["speed"])) if best_run else (lambda n: results[n]["speed"]["fps"])
        fitting = [(absrel, n) for absrel, n in scored if fps(n) >= budget]
        picks[int(budget)] = min(fitting)[1] if fitting else None
    return picks


def markdown_table(results: dict, names: list[str], picks: dict[int, str | None]) -> str:
    winners = {}
    for budget, name in picks.items():
        winners.setdefault(name, []).append(f"{budget} FPS")
    lines = ["| student | AbsRel | δ1 | params (M) | GFLOPs @240x320 | ORT ms | FPS | best-run FPS | peak MiB | best for |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    order = sorted((n for n in [TEACHER, *names] if results.get(n, {}).get("speed")),
                   key=lambda n: -results[n]["speed"]["fps"])
    for name in order:
        entry = results[name]
        ev, sp, cx = entry.get("eval", {}), entry["speed"], entry.get("complexity", {})
        label = f"{name} (the teacher: resnet18-minidpt)" if name == TEACHER else name
        lines.append(
            f"| {label} | {ev.get('abs_rel', float('nan')):.4f} | {ev.get('d1', float('nan')):.3f} | "
            f"{cx.get('params_m', float('nan')):.2f} | {cx.get('gflops', float('nan')):.2f} | "
            f"{sp['latency_ms']:.1f} | {sp['fps']:.1f} | {best_run_fps(sp):.0f} | {sp['peak_memory_mib']:.0f} | "
            f"{', '.join(winners.get(name, [])) if name != TEACHER else ''} |")
    return "\n".join(lines)


def seed_entries(results: dict, name: str) -> list[dict]:
    """The results.json entries of run NAME and of its other seeds (NAME@seedN, `--extra-seed`), seed 0 first."""
    keys = [name] + sorted(k for k in results if k.startswith(f"{name}@seed"))
    return [results[k] for k in keys if isinstance(results.get(k), dict)]


def seed_runs(results: dict, name: str) -> list[dict]:
    """The `eval` entries of run NAME and of its other seeds, seed 0 first."""
    return [entry["eval"] for entry in seed_entries(results, name) if entry.get("eval")]


def seed_table(results: dict, names: list[str]) -> str:
    """AbsRel of every preset trained with more than one seed (`--extra-seed`): the noise the picks stand on."""
    lines = ["| student | AbsRel per seed (0, 1, ...) | spread |", "|---|---|---:|"]
    for name in names:
        seeds = [run["abs_rel"] for run in seed_runs(results, name)]
        if len(seeds) > 1:
            lines.append(f"| {name} | {', '.join(f'{v:.4f}' for v in seeds)} | {max(seeds) - min(seeds):.4f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot(results: dict, names: list[str], budgets: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(n, results[n]["speed"]["fps"], results[n]["eval"]["abs_rel"]) for n in names
              if results.get(n, {}).get("speed") and results[n].get("eval")]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    ax.scatter([p[1] for p in points], [p[2] for p in points], s=36, color="tab:blue", zorder=3, label="student")
    front, best = [], float("inf")
    for name, fps, absrel in sorted(points, key=lambda p: -p[1]):
        if absrel < best:
            front.append((fps, absrel))
            best = absrel
    ax.plot(*zip(*sorted(front)), color="tab:blue", alpha=0.4, lw=1, zorder=2, label="Pareto front")
    for name, fps, absrel in points:
        ax.annotate(name, (fps, absrel), textcoords="offset points", xytext=(5, 4), fontsize=8)
    teacher = results.get(TEACHER, {})
    if teacher.get("speed") and teacher.get("eval"):
        fps, absrel = teacher["speed"]["fps"], teacher["eval"]["abs_rel"]
        ax.scatter([fps], [absrel], marker="*", s=220, color="tab:red", zorder=4, label="teacher (ResNet-18 mini-DPT)")
        ax.axhline(1.1 * absrel, color="tab:red", ls=":", lw=1, label="teacher AbsRel + 10 %")
    for budget in budgets:
        ax.axvline(budget, color="gray", ls="--", lw=1)
        ax.text(budget, 1.0, f" {budget:g} FPS", transform=ax.get_xaxis_transform(), va="bottom", fontsize=8,
                color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("FPS (onnxruntime, 2 CPU threads, batch 1, 240x320)  — log scale")
    ax.set_ylabel("AbsRel (lower is better)")
    import textwrap

    ax.set_title(textwrap.fill(title, 100), fontsize=9, pad=16)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_docs_table(table: str, docs: Path, markers: tuple[str, str] = MARKERS) -> bool:
    """Replace what stands between `markers` in `docs` with `table`; False if the file lacks them."""
    from kdcache.atomic import write_text

    text = docs.read_text()
    start, end = markers
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    write_text(docs, f"{head}{start}\n{table}\n{end}{tail}")
    return True


def phase_report(config: dict, out: Path, names: list[str], results: dict, image: Path, docs: Path) -> dict:
    _complexity(results, names)
    plan, _ = demo_steps(config, out)
    if plan.teacher.preset in results and TEACHER in results:
        results[TEACHER]["complexity"] = results[plan.teacher.preset]["complexity"]
    picks = budget_picks(results, names, config["budgets_fps"])
    best_run = budget_picks(results, names, config["budgets_fps"], best_run=True)
    results["picks"] = {str(k): v for k, v in picks.items()}
    results["picks_best_run"] = {str(k): v for k, v in best_run.items()}
    save_results(out, results)
    table = markdown_table(results, names, picks)
    seeds = seed_table(results, names)
    if seeds:
        table += "\n\nSeed spread (the same recipe, another training seed):\n\n" + seeds
    print(table)
    load = results.get(TEACHER, {}).get("speed", {}).get("load_average", ["?"])[0].split()[0]
    title = (f"{len(names)} student presets, each distilled '{config['recipe']}' for {config['epochs']} epochs from one "
             f"teacher cache (kdcache demo --scale {config['demo_scale']}); AbsRel on the synthetic test split; "
             f"median FPS on a shared 2-core CPU at load ~{load}")
    plot(results, names, config["budgets_fps"], image, title)
    if docs and write_docs_table(table, docs):
        print(f"wrote the table into {docs}")
    print(f"wrote {image}")
    for budget, name in picks.items():
        also = f"; by the best run: {best_run[budget]}" if best_run[budget] != name else ""
        if name:
            ev, sp = results[name]["eval"], results[name]["speed"]
            print(f"realtime_{budget}={name}  (AbsRel {ev['abs_rel']:.4f}, {sp['fps']:.1f} FPS median{also})")
        else:
            print(f"realtime_{budget}=none  (no preset's median reaches {budget} FPS{also})")
    _check_aliases({b: picks[b] or best_run[b] for b in picks})
    return picks


def _check_aliases(picks: dict[int, str | None]) -> None:
    """Say when a registered `realtime-N` alias no longer names the preset this run measured as best."""
    from kdcache.students import STUDENTS, resolve_spec

    for budget, name in picks.items():
        alias = f"realtime-{budget}"
        if alias in STUDENTS and name and resolve_spec(alias) != resolve_spec(name):
            print(f"note: {alias} is registered as {STUDENTS.info(alias).get('alias_of')}, this run picks {name}: "
                  f"update kdcache/students/presets.py if the difference stands above the noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="default: runs/pareto, or runs/pareto-<scale> with --scale")
    parser.add_argument("--scale", help="the demo scale to distil from (default: the config's demo_scale)")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "pareto.toml")
    parser.add_argument("--student", action="append", help="only these presets (default: every registered one)")
    parser.add_argument("--phase", action="append", choices=PHASES, help="only these phases (repeatable)")
    parser.add_argument("--remeasure", action="store_true", help="time every model again in the speed phase")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds in the speed phase")
    parser.add_argument("--extra-seed", type=int, help="train/eval the --student presets again with this seed "
                                                       "(kept as PRESET@seedN beside seed 0, for the spread)")
    parser.add_argument("--length", type=float, default=1, help="train the --student presets for this many times "
                                                                "the config's epochs (kept as PRESET@xL: a lever)")
    parser.add_argument("--image", type=Path, default=ROOT / "docs" / "images" / "students_pareto.png")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    from kdcache.students import STUDENTS, list_students

    config = scaled_config(tomllib.loads(args.config.read_text()), args.scale)
    args.out = args.out or ROOT / "runs" / ("pareto" if args.scale is None else f"pareto-{args.scale}")
    names = args.student or [n for n in list_students() if not STUDENTS.info(n).get("alias_of")]
    names = [run_name(n, args.extra_seed or 0, args.length) for n in names]
    args.out.mkdir(parents=True, exist_ok=True)
    results = load_results(args.out)
    phases = args.phase or list(PHASES)
    if "teacher" in phases:
        phase_teacher(config, args.out, names, results)
    if "train" in phases:
        phase_train(config, args.out, names, results)
    if "eval" in phases:
        phase_eval(config, args.out, names, results)
    if "speed" in phases:
        print(f"load average before timing: {_load_average()}")
        phase_speed(config, args.out, names, results, remeasure=args.remeasure, rounds=args.rounds)
    if "report" in phases:
        every = [n for n in list_students() if n in results and not STUDENTS.info(n).get("alias_of")]
        phase_report(config, args.out, every, results, args.image, args.docs)


if __name__ == "__main__":
    main()
    from kdcache.timing import print_load

    print_load()  # the machine load the figures above were timed at (kdcache.timing)

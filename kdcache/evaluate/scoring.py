"""`evaluate(config)`: students and teachers side by side, one row per model and protocol.

Each image is read once; protocols that feed the model the same input share one forward pass. Every
row names the protocol it was scored with, and a note when the requested protocol was overridden
(relative-depth models and disparity GT only ever get an aligned protocol).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from kdcache.console import log, progress
from kdcache.errors import KdcacheError, check_writable
from kdcache.evaluate.eval_config import EvalConfig
from kdcache.evaluate.context import dataset_context
from kdcache.evaluate.efficiency import measure_efficiency
from kdcache.evaluate.predictors import Predictor, load_predictor
from kdcache.evaluate.protocols import Protocol, create_protocol, resolve_protocol
from kdcache.metrics import NoValidPixels, mean_metrics


@dataclass
class _Plan:
    """One (model, protocol) pair being accumulated."""

    predictor: Predictor
    protocol: Protocol
    note: str | None
    scores: list[dict] = field(default_factory=list)
    unscored: int = 0
    eval_size: tuple[int, int] | None = None


def _open(split: Any, root, split_options: dict | None):
    if not isinstance(split, str):
        return split
    from kdcache.data import open_split

    return open_split(split, root=root, **(split_options or {}))


def _plans(predictors: list[Predictor], protocols: Sequence[str | None], gt_space: str | None) -> list[_Plan]:
    plans, seen = [], set()
    for predictor in predictors:
        for requested in protocols:
            name, note = resolve_protocol(requested, predictor.output_space, gt_space)
            if (id(predictor), name) in seen:
                continue
            seen.add((id(predictor), name))
            if note:
                log(f"[yellow]note:[/] {predictor.name}: {note}")
            plans.append(_Plan(predictor, create_protocol(name), note))
    return plans


def _note_flip_tta(plans: list[_Plan], flip_tta: bool) -> None:
    """Say so when a protocol's reference code averages with the mirrored prediction and this run does not."""
    if flip_tta:
        return
    for name in dict.fromkeys(plan.protocol.name for plan in plans if plan.protocol.reference_flip_tta):
        log(f"[yellow]note:[/] {name}: the evaluation code it follows averages each prediction with its mirror; "
            f"add --flip-tta to compare with its published numbers")


def _score_sample(sample, plans: list[_Plan], split_name: str, gt_space: str, options: dict) -> None:
    context = dataset_context(split_name, sample.meta, options["crop"], options["max_depth"])
    prepared, outputs = {}, {}
    for plan in plans:
        protocol = plan.protocol
        if protocol.name not in prepared:
            prepared[protocol.name] = protocol.prepare(sample, context)
        view = prepared[protocol.name]
        key = (id(plan.predictor), view.input_key)
        if key not in outputs:
            outputs[key] = plan.predictor.predict(view.image, flip_tta=options["flip_tta"])
        plan.eval_size = plan.eval_size or tuple(view.image.shape[:2])
        try:
            plan.scores.append(protocol.score(outputs[key], plan.predictor.output_space, view, context, gt_space))
        except NoValidPixels:
            plan.unscored += 1


def evaluate(config: EvalConfig | dict[str, Any]) -> list[dict]:
    """Score each model on a labeled split; returns one JSON-able row per (model, protocol), and writes them to
    `config.json_out` / `config.markdown_out` when set.

    `config`: an `EvalConfig` (or a TOML-shaped dict of one), e.g. `EvalConfig(["runs/x", "dpt-large"], "nyu-test")`.
    No protocol named: `metric`, or the aligned protocol where required. `crop`/`max_depth` override the dataset's
    Eigen/Garg crop and depth cap; `input_size` (H, W) the resolution students and teachers are fed (students
    default to the size recorded in their meta).
    """
    config = config if isinstance(config, EvalConfig) else EvalConfig.from_dict(config)
    config.validate()
    for option, path in (("--json", config.json_out), ("--markdown", config.markdown_out)):
        if path:
            check_writable(path, option, folder=False)  # before the evaluation, not after it
    dataset = _open(config.split, config.data_root, config.split_options)
    split_name = getattr(dataset, "name", str(config.split))
    if not getattr(dataset, "labeled", False):
        raise KdcacheError(f"split '{split_name}' has no ground truth: evaluate on a labeled split such as nyu-test")
    gt_space = dataset.space or "depth"
    protocols = config.protocols or [None]
    for name in protocols:
        if name is not None:
            create_protocol(name)  # an unknown name fails before any model is loaded
    predictors = [load_predictor(m, device=config.device, precision=config.precision, input_size=config.input_size)
                  for m in config.models]
    plans = _plans(predictors, protocols, gt_space)
    _note_flip_tta(plans, config.flip_tta)
    options = {"flip_tta": config.flip_tta, "crop": config.crop, "max_depth": config.max_depth}

    from kdcache.data import iter_samples

    skipped: list = []
    with progress(unit="img") as bar:
        task = bar.add_task(f"eval {split_name}", total=len(dataset))
        for sample in iter_samples(dataset, strict=config.strict, skipped=skipped):
            _score_sample(sample, plans, split_name, sample.space or gt_space, options)
            bar.advance(task)
    if skipped:
        log(f"[yellow]note:[/] {len(skipped)} unreadable image(s) skipped, first: {skipped[0]}")
    rows = _rows(plans, split_name, len(skipped), config)
    _write(rows, config)
    return rows


def _rows(plans: list[_Plan], split_name: str, unreadable: int, config: EvalConfig) -> list[dict]:
    """One row per plan, with efficiency figures measured once per model."""
    measured = {}
    rows = []
    for plan in plans:
        predictor = plan.predictor
        if config.efficiency and id(predictor) not in measured and plan.eval_size is not None:
            measured[id(predictor)] = measure_efficiency(predictor, plan.eval_size,
                                                         throughput_batch=config.throughput_batch)
        rows.append(_row(plan, split_name, unreadable, config.flip_tta, measured.get(id(predictor))))
    return rows


def _write(rows: list[dict], config: EvalConfig) -> None:
    from kdcache.atomic import write_text
    from kdcache.evaluate.results import to_json, to_markdown

    if config.json_out:
        write_text(config.json_out, to_json(rows))
    if config.markdown_out:
        write_text(config.markdown_out, to_markdown(rows))


def _row(plan: _Plan, split_name: str, unreadable: int, flip_tta: bool, efficiency: dict | None) -> dict:
    if not plan.scores:
        raise KdcacheError(f"no image of '{split_name}' could be scored with '{plan.protocol.name}': "
                           f"check the split's ground truth and --max-depth")
    predictor = plan.predictor
    return {
        "name": predictor.name,
        "kind": predictor.kind,
        "output_space": predictor.output_space,
        "split": split_name,
        "protocol": plan.protocol.name,
        "protocol_description": plan.protocol.description,
        "note": plan.note,
        "flip_tta": flip_tta,
        "images": len(plan.scores),
        "unscored": plan.unscored,
        "unreadable": unreadable,
        "eval_size": list(plan.eval_size) if plan.eval_size else None,
        "metrics": mean_metrics(plan.scores),
        "efficiency": efficiency,
        "identity": predictor.identity,
    }

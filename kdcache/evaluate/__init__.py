"""Evaluation: protocols from the literature, students and teachers side by side, efficiency figures.

    >>> from kdcache.evaluate import EvalConfig, evaluate
    >>> rows = evaluate(EvalConfig(["runs/x", "dpt-large"], "nyu-test"))   # metric for x, aligned-disparity for DPT

Modules: eval_config (the settings), protocols, context (dataset crops and caps), predictors, scoring
(`evaluate`), efficiency, results (tables and JSON). `EvalConfig` imports nothing heavy (the CLI reads it when it
starts); the rest loads on first use.
"""

from kdcache.evaluate.eval_config import EvalConfig

_HOMES = {
    "evaluate": "scoring",
    "measure_efficiency": "efficiency",
    "Predictor": "predictors",
    "load_predictor": "predictors",
    "PROTOCOLS": "protocols",
    "create_protocol": "protocols",
    "list_protocols": "protocols",
    "register_protocol": "protocols",
    "resolve_protocol": "protocols",
    "print_results": "results",
    "to_json": "results",
    "to_markdown": "results",
}

__all__ = ["EvalConfig", *_HOMES]


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"kdcache.evaluate.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'kdcache.evaluate' has no attribute {name!r}")

"""Evaluation: protocols from the literature, students and teachers side by side, efficiency figures.

    >>> from kdcache.evaluate import evaluate
    >>> rows = evaluate(["runs/x", "dpt-large"], "nyu-test")   # metric for x, aligned-disparity for DPT
"""

from kdcache.evaluate.efficiency import measure_efficiency
from kdcache.evaluate.evaluate import evaluate
from kdcache.evaluate.predictors import Predictor, load_predictor
from kdcache.evaluate.protocols import PROTOCOLS, create_protocol, list_protocols, register_protocol, resolve_protocol
from kdcache.evaluate.results import print_results, to_json, to_markdown

__all__ = [
    "PROTOCOLS",
    "Predictor",
    "create_protocol",
    "evaluate",
    "list_protocols",
    "load_predictor",
    "measure_efficiency",
    "print_results",
    "register_protocol",
    "resolve_protocol",
    "to_json",
    "to_markdown",
]

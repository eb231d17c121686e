"""Helpers for reporting and checking evaluation results (copy-paste lines, expected values)."""
import logging
import pprint
import sys
from collections import abc
from typing import Any, Dict, Mapping

import numpy as np

__all__ = ["print_csv_format", "verify_results", "flatten_results_dict"]


def print_csv_format(results: Mapping[str, Any]) -> None:
    """Log ``{task: {metric: value}}`` as comma-separated lines that paste into a spreadsheet.

    Per-category metrics (names with a '-') are left out to keep the lines short.
    """
    if not isinstance(results, abc.Mapping) and len(results):
        raise TypeError(f"print_csv_format: results must be a mapping, got {type(results).__name__}")
    logger = logging.getLogger(__name__)
    for task, res in results.items():
        if isinstance(res, abc.Mapping):
            important = [(k, v) for k, v in res.items() if "-" not in k]
            logger.info("copypaste: Task: {}".format(task))
            logger.info("copypaste: " + ",".join(k for k, _ in important))
            logger.info("copypaste: " + ",".join("{0:.4f}".format(v) for _, v in important))
        else:
            logger.info(f"copypaste: {task}={res}")


def verify_results(cfg: Any, results: Mapping[str, Mapping[str, float]]) -> bool:
    """Check ``results`` against ``cfg.TEST.EXPECTED_RESULTS``.

    That config entry is a list of ``[task, metric, expected, tolerance]``. A missing,
    non-finite or out-of-tolerance metric logs both sides and exits the process with
    status 1 (this is meant for CI runs); otherwise returns True.
    """
    expected_results = cfg.TEST.EXPECTED_RESULTS
    if not len(expected_results):
        return True
    ok = True
    for task, metric, expected, tolerance in expected_results:
        actual = results.get(task, {}).get(metric, None)
        if actual is None or not np.isfinite(actual) or abs(actual - expected) > tolerance:
            ok = False
    logger = logging.getLogger(__name__)
    if not ok:
        logger.error("Result verification failed!")
        logger.error("Expected Results: " + str(expected_results))
        logger.error("Actual Results: " + pprint.pformat(results))
        sys.exit(1)
    logger.info("Results verification passed.")
    return ok


def flatten_results_dict(results: Mapping[str, Any]) -> Dict[str, Any]:
    """Nested dicts to one level: ``{"a": {"b": 1}}`` becomes ``{"a/b": 1}``."""
    flat: Dict[str, Any] = {}
    for key, value in results.items():
        if isinstance(value, abc.Mapping):
            for sub_key, sub_value in flatten_results_dict(value).items():
                flat[key + "/" + sub_key] = sub_value
        else:
            flat[key] = value
    return flat

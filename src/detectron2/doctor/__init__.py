"""The environment doctor: named checks that find why detectron2 cannot run here, and the fix.

Run it as ``python -m detectron2.doctor`` (or ``detectron2-doctor``); in code::

    from detectron2.doctor import run_checks
    for result in run_checks():
        print(result.name, result.status, result.summary)
"""
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, WARN, CheckResult
from detectron2.doctor.runner import run_checks

__all__ = ["Facts", "CheckResult", "run_checks", "OK", "WARN", "FAIL", "SKIP"]

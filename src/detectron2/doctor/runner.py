"""Run the checks over one set of facts."""
import time
from typing import Iterable, List, Optional

from detectron2.doctor.checks import CHECKS
from detectron2.doctor.facts import Facts
from detectron2.doctor.result import WARN, Check, CheckResult


def _prime(facts: Facts) -> None:
    # Order matters: torch before _C (it needs torch's libraries), and _C's import probe
    # (a fork) before anything initialises CUDA in this process.
    facts.torch
    facts.ext
    facts.driver


def _run_one(check: Check, facts: Facts) -> List[CheckResult]:
    try:
        output = check.run(facts)
    except Exception as e:  # a bug in one check must not hide the others' verdicts
        output = CheckResult(check.name, WARN, "the check itself failed to run", [f"{type(e).__name__}: {e}"],
                             ["please report this with the output of `python -m detectron2.doctor --json`"])
    results = [output] if isinstance(output, CheckResult) else list(output)
    for result in results:
        result.title = result.title or check.title
    return results


def run_checks(facts: Optional[Facts] = None, only: Optional[Iterable[str]] = None,
               selftest: bool = True) -> List[CheckResult]:
    """Results of the selected checks (all by default) in report order."""
    facts = facts or Facts()
    wanted = set(only) if only else None
    unknown = (wanted or set()) - {c.name for c in CHECKS}
    if unknown:
        raise ValueError(f"only: unknown check(s) {sorted(unknown)}; known: {[c.name for c in CHECKS]}")
    _prime(facts)
    results: List[CheckResult] = []
    for check in CHECKS:
        if wanted is not None and check.name not in wanted:
            continue
        if check.name == "selftest" and not selftest:
            continue
        start = time.perf_counter()
        results += _run_one(check, facts)
        facts.timings[f"check:{check.name}"] = round(time.perf_counter() - start, 4)
    return results

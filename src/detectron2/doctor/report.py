"""Render results: a table for people (colour on a TTY), JSON for scripts."""
import os
import sys
import textwrap
from typing import Dict, List, Sequence

from detectron2.doctor.facts import Facts
from detectron2.doctor.result import FAIL, OK, SKIP, WARN, CheckResult

SCHEMA_VERSION = 1
_COLORS = {OK: "\033[32m", WARN: "\033[33m", FAIL: "\033[31m", SKIP: "\033[2m"}
_RESET = "\033[0m"


def use_color(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def failed(results: Sequence[CheckResult]) -> List[str]:
    return [r.name for r in results if r.status == FAIL]


def warned(results: Sequence[CheckResult]) -> List[str]:
    return [r.name for r in results if r.status == WARN]


def exit_code(results: Sequence[CheckResult], strict: bool = False) -> int:
    """0 when healthy; 1 when a check failed (or, with strict, warned)."""
    return 1 if failed(results) or (strict and warned(results)) else 0


def _paint(status: str, text: str, color: bool) -> str:
    return f"{_COLORS[status]}{text}{_RESET}" if color else text


def _header(facts: Facts) -> str:
    torch = facts.torch
    torch_text = f"torch {torch.version}" if torch else "torch missing"
    return (f"detectron2 doctor: detectron2 {facts.detectron2_version}, {torch_text}, Python {facts.python}, "
            f"{facts.env_kind} environment at {facts.prefix}")


def render_table(results: Sequence[CheckResult], facts: Facts, color: bool = False, verbose: bool = False) -> str:
    width = max([len(r.name) for r in results] + [5])
    lines = [_header(facts), "", f"{'STATUS':<6}  {'CHECK':<{width}}  RESULT"]
    for r in results:
        lines.append(f"{_paint(r.status, f'{r.status:<6}', color)}  {r.name:<{width}}  {r.summary}")
    details = [r for r in results if verbose or r.status in (FAIL, WARN)]
    if details:
        lines += ["", "Details"]
    for r in details:
        lines.append(f"{_paint(r.status, r.status, color)} {r.name}: {r.summary}")
        for item in r.evidence:
            lines += textwrap.wrap(item, 110, initial_indent="    saw: ", subsequent_indent="         ")
        for item in r.fix:
            lines.append(f"    fix: {item}")
    bad = failed(results)
    lines += ["", f"FAILED: {', '.join(bad)}" if bad else "healthy: no check failed"
              + (f" ({len(warned(results))} warning(s))" if warned(results) else "")]
    return "\n".join(lines)


def to_json(results: Sequence[CheckResult], facts: Facts, elapsed: float) -> Dict[str, object]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "detectron2-doctor",
        "healthy": not failed(results),
        "failed": failed(results),
        "warned": warned(results),
        "elapsed_s": round(elapsed, 3),
        "environment": facts.summary(),
        "checks": [r.to_dict() for r in results],
        "timings_s": dict(facts.timings),
    }

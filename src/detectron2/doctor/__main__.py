"""``python -m detectron2.doctor`` / ``detectron2-doctor``: diagnose this installation."""
import argparse
import json
import sys
import time
from typing import List, Optional

from detectron2.doctor.checks import CHECKS
from detectron2.doctor.facts import Facts
from detectron2.doctor.report import exit_code, failed, render_table, to_json, use_color
from detectron2.doctor.runner import run_checks


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="detectron2-doctor",
        description="Check that the driver, CUDA, cuDNN, PyTorch and detectron2's compiled ops fit together; "
                    "name the cause and the fix of each mismatch.",
        epilog="exit status: 0 when no check failed, 1 when one did (named on stderr), 2 on bad usage",
    )
    p.add_argument("--json", action="store_true", help="print a JSON report for scripts")
    p.add_argument("--check", action="append", metavar="NAME", choices=[c.name for c in CHECKS],
                   help="run only this check (repeatable)")
    p.add_argument("--no-selftest", action="store_true", help="skip running the CUDA ops on the GPUs")
    p.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")
    p.add_argument("--verbose", "-v", action="store_true", help="show evidence for passing checks too")
    p.add_argument("--no-color", action="store_true", help="never colour the table")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    facts = Facts()
    results = run_checks(facts, only=args.check, selftest=not args.no_selftest)
    elapsed = time.perf_counter() - start
    if args.json:
        print(json.dumps(to_json(results, facts, elapsed), indent=2))
    else:
        print(render_table(results, facts, color=use_color() and not args.no_color, verbose=args.verbose))
    code = exit_code(results, strict=args.strict)
    if code:
        names = failed(results) or [r.name for r in results if r.status == "warn"]
        print(f"detectron2-doctor: failed checks: {', '.join(names)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Count how often py-rattler's index_fs run crashes its process at exit.

    python scripts/check_rattler_exit.py [--runs 12] [--site DIR]

Each run indexes a small channel in a fresh interpreter that exits normally (no os._exit),
so a crash while the runtime tears down shows as a signal / non-zero status. --site puts a
directory (e.g. `pip install --target DIR py-rattler==X`) first on sys.path.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CODE = """
import asyncio, sys
if sys.argv[2]:
    sys.path.insert(0, sys.argv[2])
import rattler, rattler.index
r = rattler.index.index_fs(sys.argv[1], write_zst=False, write_shards=False, force=True)
if asyncio.iscoroutine(r):
    asyncio.run(r)
print(getattr(rattler, "__version__", "?"))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--site", default="")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "distribution"))
    import channel_model as M

    with tempfile.TemporaryDirectory() as d:
        for pkg in M.pytorch_channel()[:3]:
            M.write_package(pkg, d)
        codes = []
        version = "?"
        for _ in range(args.runs):
            p = subprocess.run([sys.executable, "-c", CODE, d, args.site], capture_output=True, text=True)
            codes.append(p.returncode)
            if p.returncode == 0:
                version = p.stdout.strip() or version
            ok = any(os.path.exists(os.path.join(d, sub, "repodata.json")) for sub in ("noarch", "linux-64"))
    crashes = sum(c != 0 for c in codes)
    print(json.dumps({"site": args.site or "installed", "version": version, "runs": args.runs,
                      "crashes": crashes, "exit_codes": codes, "repodata_written": ok}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

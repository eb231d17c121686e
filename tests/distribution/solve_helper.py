"""Solve one request with py-rattler in a child process; prints the result as JSON.

    python solve_helper.py '{"channels": [...paths], "specs": [...], "cuda": "12.2" | null}'

Run as a child because py-rattler 0.28's runtime can crash while the interpreter tears
down; the JSON is flushed first and the process leaves through os._exit.
"""
import asyncio
import json
import os
import sys

import rattler
from rattler import BuildString, Channel, GenericVirtualPackage, PackageName, Version


def virtual_packages(cuda):
    found = [("__linux", "5.15"), ("__glibc", "2.31"), ("__unix", "0"), ("__archspec", "1")]
    if cuda:
        found.append(("__cuda", cuda))
    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString("x86_64" if n == "__archspec" else "0"))
            for n, v in found]


def solve(request):
    channels = [Channel("file://" + os.path.abspath(path)) for path in request["channels"]]
    try:
        specs = [rattler.MatchSpec(s, strict=False) for s in request["specs"]]  # conda's lenient parsing
        records = asyncio.run(rattler.solve(channels, specs, platforms=["linux-64", "noarch"],
                                            virtual_packages=virtual_packages(request.get("cuda"))))
    except Exception as e:  # the solver's message is what the tests read
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "packages": {r.name.normalized: {"version": str(r.version), "build": str(r.build),
                                                         "channel": str(r.channel)} for r in records}}


if __name__ == "__main__":
    print(json.dumps(solve(json.loads(sys.argv[1]))))
    sys.stdout.flush()
    os._exit(0)

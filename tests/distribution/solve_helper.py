"""Solve one request with py-rattler in a child process; prints the result as JSON.

    python solve_helper.py '{"channels": [...paths], "specs": [...], "cuda": "12.2" | null,
                             "cuda_arch": "8.6" | null, "platform": "linux-64"}'
or, for many solves in one process (one JSON request per line on stdin, one answer per line):
    python solve_helper.py -

Run as a child because py-rattler 0.28's runtime can crash while the interpreter tears
down; the JSON is flushed first and the process leaves through os._exit.
"""
import asyncio
import json
import os
import sys

import rattler
from rattler import BuildString, Channel, GenericVirtualPackage, PackageName, Version


def virtual_packages(cuda, cuda_arch=None, platform="linux-64"):
    """The machine: __cuda is the driver's CUDA version, __cuda_arch the lowest compute
    capability of its GPUs (CEP 46; build string 0); both absent without a GPU."""
    found = [("__linux", "5.15"), ("__glibc", "2.31"), ("__unix", "0"), ("__archspec", "1")]
    if cuda:
        found.append(("__cuda", cuda))
    if cuda_arch:
        found.append(("__cuda_arch", cuda_arch))
    cpu = "aarch64" if platform == "linux-aarch64" else "x86_64"
    return [GenericVirtualPackage(PackageName(n), Version(v), BuildString(cpu if n == "__archspec" else "0"))
            for n, v in found]


def solve(request):
    channels = [Channel("file://" + os.path.abspath(path)) for path in request["channels"]]
    try:
        specs = [rattler.MatchSpec(s, strict=False) for s in request["specs"]]  # conda's lenient parsing
        platform = request.get("platform", "linux-64")
        vpkgs = virtual_packages(request.get("cuda"), request.get("cuda_arch"), platform)
        records = asyncio.run(rattler.solve(channels, specs, platforms=[platform, "noarch"], virtual_packages=vpkgs))
    except Exception as e:  # the solver's message is what the tests read
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "packages": {r.name.normalized: {"version": str(r.version), "build": str(r.build),
                                                         "channel": str(r.channel)} for r in records}}


if __name__ == "__main__":
    if sys.argv[1] == "-":
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(solve(json.loads(line))), flush=True)
    else:
        print(json.dumps(solve(json.loads(sys.argv[1]))))
    sys.stdout.flush()
    os._exit(0)

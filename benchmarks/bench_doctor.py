"""The doctor's cost: fatbin listing vs cuobjdump, and a full diagnosis vs torch's collect_env.

    python benchmarks/bench_doctor.py [--quick]

Peers: `cuobjdump --list-elf --list-ptx` (when found on PATH or under CUDA_HOME) for the
architecture listing, and `torch.utils.collect_env.get_pretty_env_info()` for a whole
environment report. Times exclude `import torch` (paid once by any tool). The --device
flag is accepted for uniformity; the doctor itself is CPU work.
"""
import os
import shutil
import subprocess
import sys

from common import parse_args, print_table, time_fn

import torch

from detectron2.doctor.facts import Facts
from detectron2.doctor.runner import run_checks
from detectron2.utils._fatbin import read_fatbin_entries

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "tests", "doctor", "data", "fatbin_a.so.bin")


def _cuobjdump():
    found = shutil.which("cuobjdump")
    home = os.environ.get("CUDA_HOME")
    if not found and home and os.path.isfile(os.path.join(home, "bin", "cuobjdump")):
        found = os.path.join(home, "bin", "cuobjdump")
    return found


def _listing_row(label, path, cuobjdump, iters):
    ours = time_fn(lambda: read_fatbin_entries(path), iters=iters, warmup=1)
    if cuobjdump is None:
        return [label, len(read_fatbin_entries(path)), ours, "n/a (no cuobjdump)", "n/a"]
    cmd = [cuobjdump, "--list-elf", "--list-ptx", path]
    peer = time_fn(lambda: subprocess.run(cmd, capture_output=True), iters=max(1, iters // 3), warmup=0)
    return [label, len(read_fatbin_entries(path)), ours, peer, ours / peer]


def main():
    args = parse_args(__doc__)
    cuobjdump = _cuobjdump()
    rows = [_listing_row("fatbin listing: test fixture (5 entries)", FIXTURE, cuobjdump, args.iters)]
    libtorch_cuda = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cuda.so")
    if not args.quick and os.path.isfile(libtorch_cuda):
        rows.append(_listing_row(f"fatbin listing: libtorch_cuda.so ({os.path.getsize(libtorch_cuda) >> 20} MiB)",
                                 libtorch_cuda, cuobjdump, 3))

    from torch.utils.collect_env import get_pretty_env_info

    ours = time_fn(lambda: run_checks(Facts(), selftest=False), iters=args.iters, warmup=1)
    peer = time_fn(get_pretty_env_info, iters=max(1, args.iters // 3), warmup=1)
    rows.append(["full diagnosis (doctor, no selftest) vs torch collect_env", len(run_checks(Facts(), selftest=False)),
                 ours, peer, ours / peer])
    # The user-facing budget: `python -m detectron2.doctor` end to end (5 s on a healthy
    # machine without a GPU), beside a bare `python -c "import torch"`.
    cli = [sys.executable, "-m", "detectron2.doctor", "--json"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    ours = time_fn(lambda: subprocess.run(cli, capture_output=True, env=env), iters=max(1, args.iters // 3), warmup=0)
    peer = time_fn(lambda: subprocess.run([sys.executable, "-c", "import torch"], env=env), iters=max(1, args.iters // 3),
                   warmup=0)
    rows.append(["python -m detectron2.doctor --json (wall) vs python -c 'import torch'", "-", ours, peer, ours / peer])
    print(f"device: CPU, Python {sys.version.split()[0]}, torch {torch.__version__}; peer for listings: "
          f"{cuobjdump or 'none found'}")
    print_table(rows, ["case", "entries/checks", "ours ms", "peer ms", "ours/peer"])


if __name__ == "__main__":
    main()

"""Gather conda packages into one channel directory for an air-gapped cluster.

    python scripts/mirror_channel.py ~/miniforge3/pkgs channel/ --out mirror/

Takes package files (.conda, .tar.bz2) from the given directories or files (a conda
package cache after `mamba env create -f environment.yml`, our local channel), puts each
into the subdir its own info/index.json names (linux-64 or noarch), and indexes the result
with py-rattler. Copy `mirror/` to the cluster and install with
`mamba create -n detectron2 -c file:///path/to/mirror --override-channels --offline detectron2`.
"""
import argparse
import asyncio
import glob
import json
import os
import shutil
import sys
import tarfile
import tempfile
from typing import Iterable, List


def package_files(sources: Iterable[str]) -> List[str]:
    found = []
    for src in sources:
        if os.path.isdir(src):
            for pattern in ("*.conda", "*.tar.bz2", "*/*.conda", "*/*.tar.bz2"):
                found += glob.glob(os.path.join(src, pattern))
        elif src.endswith((".conda", ".tar.bz2")):
            found.append(src)
        else:
            raise SystemExit(f"error: {src!r} is neither a directory nor a .conda/.tar.bz2 package")
    return sorted(set(found))


def read_index(path: str) -> dict:
    """info/index.json of a package, read without unpacking the payload."""
    if path.endswith(".tar.bz2"):
        with tarfile.open(path, "r:bz2") as tar:
            return json.load(tar.extractfile("info/index.json"))
    from conda_package_handling import api as cph

    with tempfile.TemporaryDirectory() as tmp:
        cph.extract(path, dest_dir=tmp, components="info")
        with open(os.path.join(tmp, "info", "index.json")) as f:
            return json.load(f)


def mirror(sources: Iterable[str], out: str) -> int:
    count = 0
    for sub in ("noarch", "linux-64"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    for path in package_files(sources):
        subdir = read_index(path).get("subdir") or "noarch"
        dest = os.path.join(out, subdir, os.path.basename(path))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            shutil.copy2(path, dest)
            count += 1
    import rattler.index

    result = rattler.index.index_fs(out, write_zst=False, write_shards=False, force=True)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return count


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="package cache dirs, channel dirs or package files")
    parser.add_argument("--out", required=True, help="mirror channel directory to fill and index")
    args = parser.parse_args(argv)
    added = mirror(args.sources, args.out)
    print(f"{added} packages added to {args.out} (indexed)")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(code)  # py-rattler 0.28 can crash while the interpreter tears down

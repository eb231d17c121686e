"""Gather conda packages into one channel directory for an air-gapped cluster.

    python scripts/mirror_channel.py ~/miniforge3/pkgs channel/ --out mirror/

Takes package files (.conda, .tar.bz2) from the given directories or files (a conda
package cache after `mamba env create -f environment.yml`, our local channel), puts each
into the subdir its own info/index.json names (linux-64 or noarch), and indexes the result
with py-rattler. Interrupted runs lose nothing: rerun the same command (see
scripts/channel_io.py). Copy `mirror/` to the cluster and install with
`mamba create -n detectron2 -c file:///path/to/mirror --override-channels --offline detectron2`.
"""
import argparse
import glob
import json
import os
import sys
import tarfile
import tempfile
from typing import Iterable, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import channel_io  # noqa: E402


def package_files(sources: Iterable[str]) -> List[str]:
    found = []
    for src in sources:
        if os.path.isdir(src):
            for pattern in ("*.conda", "*.tar.bz2", "*/*.conda", "*/*.tar.bz2"):
                # glob skips dot files: temporaries of an interrupted copy are not packages
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
    """Copy the packages of ``sources`` into ``out`` and index it; returns how many were
    copied. Safe to interrupt and rerun: copies land under a temporary name and are renamed
    once their size and sha256 match the source (its channel's repodata.json where it has
    one); a rerun recopies a file that is missing or differs, and the index is only
    replaced once it lists every package with its true size and sha256."""
    out = os.path.abspath(out)
    with channel_io.channel_lock(out):
        for note in channel_io.recover(out):
            print(note)
        for sub in channel_io.SUBDIRS:
            os.makedirs(os.path.join(out, sub), exist_ok=True)
        items = []
        for path in package_files(sources):
            digest = channel_io.expected_digest(path)  # first: a damaged source is named as such
            try:
                subdir = read_index(path).get("subdir") or "noarch"
            except Exception as e:
                raise channel_io.ChannelError(f"{path} is not a readable conda package: {e}") from e
            items.append((path, os.path.join(out, subdir, os.path.basename(path)), digest))
        count = channel_io.add_packages(items)
        channel_io.index(out)
    return count


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="package cache dirs, channel dirs or package files")
    parser.add_argument("--out", required=True, help="mirror channel directory to fill and index")
    args = parser.parse_args(argv)
    try:
        added = mirror(args.sources, args.out)
    except channel_io.ChannelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{added} packages added to {args.out} (indexed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))  # py-rattler runs in a child process (channel_io.index)

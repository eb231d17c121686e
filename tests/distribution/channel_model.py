"""A model of the pytorch, nvidia and conda-forge channels, as published, for solver tests.

Only the packages, versions, build strings and dependencies that decide which pytorch,
CUDA runtime and detectron2 variant an environment gets. Each record becomes an empty
package file (info/index.json only) in `<channel>/<subdir>/`, and py-rattler's own
indexer writes the repodata.json files, so the solver sees real channel directories.
"""
import asyncio
import io
import json
import os
import sys
import tarfile
from typing import Dict, List, NamedTuple, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import distro  # noqa: E402  (scripts/distro.py: renders our recipe)
from distro import V  # noqa: E402


class Pkg(NamedTuple):
    channel: str
    name: str
    version: str
    build: str
    depends: Tuple[str, ...] = ()
    constrains: Tuple[str, ...] = ()
    noarch: str = ""  # "", "generic" or "python"
    track_features: str = ""
    build_number: int = 0
    subdir: str = "linux-64"  # ignored for noarch packages


PY_VERSIONS = {"3.8": "3.8.18", "3.9": "3.9.18", "3.10": "3.10.14", "3.11": "3.11.9",
               "3.12": "3.12.7", "3.13": "3.13.1"}
# pytorch channel: pytorch 2.0.1 per CUDA (the cuDNN inside shows in the build string).
CUDNN_OF = {"11.7": "8.5.0", "11.8": "8.7.0"}
# pytorch-cuda's bounded CUDA library ranges, and the nvidia channel versions inside them.
CUDA_LIBS = {
    "11.7": {"libcublas": ("11.10.3.66", ">=11.10.3.66,<12.0.1.189"),
             "libcufft": ("10.7.2.124", ">=10.7.2.50,<11.0.0.21"),
             "libcusolver": ("11.4.0.1", ">=11.4.0.1,<11.4.2.57"),
             "libcusparse": ("11.7.4.91", ">=11.7.4.91,<12.0.0.76"),
             "libnpp": ("11.7.4.75", ">=11.7.4.75,<12.0.0.30"),
             "libnvjpeg": ("11.8.0.2", ">=11.8.0.2,<12.0.0.28")},
    "11.8": {"libcublas": ("11.11.3.6", ">=11.11.3.6,<12.0.1.189"),
             "libcufft": ("10.9.0.58", ">=10.9.0.58,<11.0.0.21"),
             "libcusolver": ("11.4.1.48", ">=11.4.1.48,<11.4.2.57"),
             "libcusparse": ("11.7.5.86", ">=11.7.5.86,<12.0.0.76"),
             "libnpp": ("11.8.0.86", ">=11.8.0.86,<12.0.0.30"),
             "libnvjpeg": ("11.9.0.86", ">=11.9.0.86,<12.0.0.28")},
}
CUDA_PARTS = {"11.7": {"cuda-cudart": "11.7.99", "cuda-cupti": "11.7.101", "cuda-nvrtc": "11.7.99",
                       "cuda-nvtx": "11.7.91", "cuda-libraries": "11.7.1", "cuda-runtime": "11.7.1"},
              "11.8": {"cuda-cudart": "11.8.89", "cuda-cupti": "11.8.87", "cuda-nvrtc": "11.8.89",
                       "cuda-nvtx": "11.8.86", "cuda-libraries": "11.8.0", "cuda-runtime": "11.8.0"}}
PYTORCH_CUDA_BUILD = {"11.7": "h778d358_5", "11.8": "h7e8668a_5"}

# The kernels each modelled pytorch build carries (torch.cuda.get_arch_list() of the real
# packages), keyed by the CUDA tag of its build string. Stated here, apart from
# variants.py, so that the solve table is checked against the channel, not against itself.
PYTORCH_KERNELS = {
    "cuda11.7": "sm_37 sm_50 sm_60 sm_70 sm_75 sm_80 sm_86",  # pytorch channel 2.0.1: no PTX
    "cuda11.8": "sm_37 sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90",
    "cuda129": "sm_50 sm_60 sm_70 sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120",  # conda-forge 2.12
    "cuda130": "sm_75 sm_80 sm_86 sm_90 sm_100 sm_120 compute_120",
}

# conda-forge python packages our run requirements name: (version, noarch?).
CF_PYTHON_LIBS = {
    "pillow": "10.4.0", "matplotlib-base": "3.8.4", "pycocotools": "2.0.8", "termcolor": "2.4.0",
    "tabulate": "0.9.0", "cloudpickle": "3.0.0", "tqdm": "4.66.5", "tensorboard": "2.17.1",
    "fvcore": "0.1.5.post20221221", "iopath": "0.1.9", "omegaconf": "2.3.0", "hydra-core": "1.3.2",
    "yacs": "0.1.8", "packaging": "24.1", "py-opencv": "4.10.0", "pip": "24.2", "filelock": "3.16.1",
    "jinja2": "3.1.4", "networkx": "3.1", "sympy": "1.13.3", "typing_extensions": "4.12.2",
    "requests": "2.32.3",
}
COMPILED = {"pillow", "matplotlib-base", "pycocotools", "py-opencv"}


def _pydep(py: str) -> str:
    major, minor = py.split(".")
    return f"python >={py},<{major}.{int(minor) + 1}.0a0"


def _pytag(py: str) -> str:
    return py.replace(".", "")


def pytorch_channel() -> List[Pkg]:
    pkgs = [
        Pkg("pytorch", "pytorch-mutex", "1.0", "cuda", noarch="generic", build_number=100),
        Pkg("pytorch", "pytorch-mutex", "1.0", "cpu", noarch="generic", track_features="cpuonly", build_number=100),
        Pkg("pytorch", "cpuonly", "2.0", "0", depends=("pytorch-mutex 1.0 cpu",), noarch="generic"),
    ]
    for cuda in ("11.7", "11.8"):
        parts = tuple(f"{n} >={cuda},<{float(cuda) + 0.1:.1f}" for n in
                      ("cuda-libraries", "cuda-nvtx", "cuda-cudart", "cuda-cupti", "cuda-nvrtc", "cuda-runtime"))
        libs = tuple(f"{n} {rng}" for n, (_, rng) in CUDA_LIBS[cuda].items())
        pkgs.append(Pkg("pytorch", "pytorch-cuda", cuda, PYTORCH_CUDA_BUILD[cuda], depends=parts + libs))
    for py in V.VARIANTS[0].pythons:
        # pytorch 2.0.x declares only `mkl >=2018`: the newest (2024.1) breaks its import.
        common = (_pydep(py), "filelock", "jinja2", "networkx", "sympy", "typing_extensions", "mkl >=2018")
        for cuda in ("11.7", "11.8"):
            nxt = f"{float(cuda) + 0.1:.1f}"
            pkgs.append(Pkg("pytorch", "pytorch", "2.0.1", f"py{py}_cuda{cuda}_cudnn{CUDNN_OF[cuda]}_0",
                            depends=common + (f"pytorch-cuda >={cuda},<{nxt}", "pytorch-mutex 1.0 cuda",
                                              "torchtriton 2.0.0"),
                            constrains=("cpuonly <0",)))
            pkgs.append(Pkg("pytorch", "torchvision", "0.15.2", f"py{_pytag(py)}_cu{cuda.replace('.', '')}",
                            depends=(_pydep(py), "numpy >=1.11", "pillow >=5.3.0,!=8.3.*", "requests",
                                     "pytorch 2.0.1", f"pytorch-cuda {cuda}.*", "pytorch-mutex 1.0 cuda")))
        pkgs.append(Pkg("pytorch", "pytorch", "2.0.1", f"py{py}_cpu_0",
                        depends=common + ("pytorch-mutex 1.0 cpu",)))
        pkgs.append(Pkg("pytorch", "torchvision", "0.15.2", f"py{_pytag(py)}_cpu",
                        depends=(_pydep(py), "numpy >=1.11", "pillow >=5.3.0,!=8.3.*", "requests",
                                 "pytorch 2.0.1", "pytorch-mutex 1.0 cpu")))
        pkgs.append(Pkg("pytorch", "torchtriton", "2.0.0", f"py{_pytag(py)}",
                        depends=(_pydep(py), "filelock", "pytorch")))
    return pkgs


def nvidia_channel() -> List[Pkg]:
    pkgs = []
    for cuda in ("11.7", "11.8"):
        nxt = f"{float(cuda) + 0.1:.1f}"
        parts = CUDA_PARTS[cuda]
        for name, version in parts.items():
            deps: Tuple[str, ...] = ()
            if name == "cuda-libraries":
                deps = tuple(f"{n} >={v}" for n, (v, _) in CUDA_LIBS[cuda].items()) + (
                    f"cuda-cudart >={cuda},<{nxt}", f"cuda-nvrtc >={cuda},<{nxt}")
            elif name == "cuda-runtime":
                deps = (f"cuda-libraries >={parts['cuda-libraries']}",)
            pkgs.append(Pkg("nvidia", name, version, "0", depends=deps))
        for name, (version, _) in CUDA_LIBS[cuda].items():
            pkgs.append(Pkg("nvidia", name, version, "0"))
        # nvidia also publishes pytorch-cuda, identical to the pytorch channel's.
    pkgs += [p._replace(channel="nvidia") for p in pytorch_channel() if p.name == "pytorch-cuda"]
    return pkgs


def conda_forge_channel() -> List[Pkg]:
    pkgs = []
    for py, full in PY_VERSIONS.items():
        pkgs.append(Pkg("conda-forge", "python", full, "h2e5c1a9_0_cpython"))
        numpy = "1.24.4" if py == "3.8" else ("2.1.3" if py == "3.13" else "1.26.4")
        pkgs.append(Pkg("conda-forge", "numpy", numpy, f"py{_pytag(py)}h1d8e4c2_0", depends=(_pydep(py),)))
        if py not in ("3.8", "3.9"):
            pkgs.append(Pkg("conda-forge", "numpy", "2.1.3", f"py{_pytag(py)}h7f9a6b1_0", depends=(_pydep(py),)))
        for name in sorted(COMPILED):
            pkgs.append(Pkg("conda-forge", name, CF_PYTHON_LIBS[name], f"py{_pytag(py)}h3b2c7d0_0",
                            depends=(_pydep(py), "numpy")))
    for name, version in CF_PYTHON_LIBS.items():
        if name not in COMPILED:
            pkgs.append(Pkg("conda-forge", name, version, "pyhd8ed1ab_0", depends=("python >=3.8",), noarch="python"))
    for mkl in ("2023.1.0", "2024.1.0"):
        pkgs.append(Pkg("conda-forge", "mkl", mkl, "h6d00ec8_0"))
    # conda-forge's cuda-arch metapackage: one version per compute capability, installable
    # only where the machine's lowest GPU (__cuda_arch) is that version or is not reported.
    for cap in V.COMPUTE_CAPABILITIES:
        pkgs.append(Pkg("conda-forge", "cuda-arch", cap, "0", constrains=(f"__cuda_arch {cap}",), noarch="generic"))
    # Today's conda-forge pytorch: flavour in the build string, cuda-version carries __cuda.
    for cuda in ("12.9", "13.0"):
        major = cuda.split(".")[0]
        pkgs.append(Pkg("conda-forge", "cuda-version", cuda, "h4ba93d1_3", noarch="generic",
                        constrains=(f"__cuda >={major}", f"cudatoolkit {cuda}|{cuda}.*")))
    for py in ("3.10", "3.11", "3.12", "3.13"):
        for cuda in ("12.9", "13.0"):
            tag = cuda.replace(".", "")
            nxt = int(cuda.split(".")[0]) + 1
            pkgs.append(Pkg("conda-forge", "pytorch", "2.12.0", f"cuda{tag}_generic_py{_pytag(py)}_h5a1b2c3_200",
                            depends=(_pydep(py), "__cuda", f"cuda-version >={cuda},<{nxt}", "numpy", "filelock",
                                     "jinja2", "networkx", "sympy", "typing_extensions"),
                            build_number=200))
            pkgs.append(Pkg("conda-forge", "torchvision", "0.27.0", f"cuda{tag}_py{_pytag(py)}_h9c8d7e6_0",
                            depends=(_pydep(py), "pytorch 2.12.* cuda*", "numpy", "pillow")))
        pkgs.append(Pkg("conda-forge", "pytorch", "2.12.0", f"cpu_generic_py{_pytag(py)}_h0f1e2d3_0",
                        depends=(_pydep(py), "numpy", "filelock", "jinja2", "networkx", "sympy",
                                 "typing_extensions")))
        pkgs.append(Pkg("conda-forge", "torchvision", "0.27.0", f"cpu_py{_pytag(py)}_h6e5d4c3_0",
                        depends=(_pydep(py), "pytorch 2.12.* cpu*", "numpy", "pillow")))
    # conda-forge's own detectron2 feedstock (0.6): strict channel priority must keep ours.
    pkgs.append(Pkg("conda-forge", "detectron2", "0.6", "cpu_py311h1234567_17",
                    depends=(_pydep("3.11"), "pytorch * cpu*", "numpy"), build_number=17))
    # conda-forge builds the same stack for linux-aarch64 (Grace Hopper); the pytorch and
    # nvidia channels' 2.0.1 stack is x86_64 only.
    return pkgs + [p._replace(subdir="linux-aarch64") for p in pkgs if not p.noarch]


def detectron2_records(skip: Sequence[Tuple[str, str]] = ()) -> List[Pkg]:
    """Our packages as the recipe declares them, one per conda_build_config row.

    `skip` lists (variant, python) pairs whose real built package is added instead.
    """
    pkgs = []
    for row in distro.config_rows():
        if (row["d2_variant"], row["python"]) in skip:
            continue
        meta = distro.render(row)
        depends, constrains = distro.package_depends(meta)
        pkgs.append(Pkg(V.CHANNEL, "detectron2", str(meta["package"]["version"]), meta["build"]["string"],
                        depends=tuple(depends), constrains=tuple(constrains),
                        build_number=int(meta["build"]["number"]), subdir=row["target_platform"]))
    return pkgs


def all_packages() -> List[Pkg]:
    return pytorch_channel() + nvidia_channel() + conda_forge_channel() + detectron2_records()


def write_package(pkg: Pkg, channel_dir: str) -> str:
    """An empty .tar.bz2 whose info/index.json describes `pkg`; returns its path."""
    subdir = "noarch" if pkg.noarch else pkg.subdir
    index = {"name": pkg.name, "version": pkg.version, "build": pkg.build, "build_number": pkg.build_number,
             "depends": list(pkg.depends), "constrains": list(pkg.constrains), "subdir": subdir,
             "license": "model", "timestamp": 1700000000000}
    if pkg.noarch:
        index["noarch"] = pkg.noarch
    if pkg.track_features:
        index["track_features"] = pkg.track_features
    os.makedirs(os.path.join(channel_dir, subdir), exist_ok=True)
    path = os.path.join(channel_dir, subdir, f"{pkg.name}-{pkg.version}-{pkg.build}.tar.bz2")
    with tarfile.open(path, "w:bz2") as tar:
        for name, payload in (("info/index.json", index), ("info/paths.json", {"paths": [], "paths_version": 1})):
            data = json.dumps(payload).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(data))
    return path


def index_channel(channel_dir: str) -> None:
    """py-rattler's indexer writes <subdir>/repodata.json for every subdir."""
    import rattler.index

    for subdir in ("noarch", "linux-64", "linux-aarch64"):
        os.makedirs(os.path.join(channel_dir, subdir), exist_ok=True)
    result = rattler.index.index_fs(channel_dir, write_zst=False, write_shards=False, force=True)
    if asyncio.iscoroutine(result):
        asyncio.run(result)


def build_channels(root: str, packages: Sequence[Pkg]) -> Dict[str, str]:
    """Write and index one directory per channel under `root`; returns name -> path."""
    dirs: Dict[str, str] = {}
    for pkg in packages:
        dirs.setdefault(pkg.channel, os.path.join(root, pkg.channel))
        write_package(pkg, dirs[pkg.channel])
    for channel_dir in dirs.values():
        index_channel(channel_dir)
    return dirs

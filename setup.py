"""Build script for detectron2's compiled ops (``detectron2._C``).

Everything declarative (name, version, dependencies) lives in pyproject.toml; this file
only decides which sources to compile and whether to compile them for CUDA.

Environment variables:
  FORCE_CUDA=1          build the CUDA kernels even when no GPU is visible (build farms);
                        fails with one line saying why when CUDA cannot be compiled here.
  FORCE_CUDA=0          build the C++ (CPU) ops only, even when a CUDA toolkit is found.
  (unset)               CUDA when a toolkit is found and a GPU is visible or
                        TORCH_CUDA_ARCH_LIST is set; otherwise, or when something CUDA
                        needs is missing, C++ only (one line says why).
  TORCH_CUDA_ARCH_LIST  GPU architectures to compile for, e.g. "8.0;8.6+PTX" (read by torch).
  MAX_JOBS              parallel compile jobs (read by torch's ninja builder).
  DEBUG=1               keep debug info (host -g, device -lineinfo) and the symbol table;
                        the default is a release build: no debug info, stripped at link.
"""
import glob
import os
import re
import subprocess
import sys
import sysconfig
from typing import List, Optional

from setuptools import setup

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # the one sentence a user needs, instead of a setuptools traceback
    sys.exit(
        "error: building detectron2 needs PyTorch installed first: install torch "
        "(e.g. `pip install torch torchvision` or `conda install pytorch torchvision -c pytorch`), "
        "then run `pip install --no-build-isolation .`"
    )

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("src", "detectron2", "csrc")
# torch's ATen/cuda headers include these; a CUDA toolkit may lack them (pip's torch
# brings them in its nvidia-* dependencies instead).
CUDA_LIBRARY_HEADERS = ("cusparse.h", "cublas_v2.h", "cusolverDn.h")


def _cuda_library_include_dirs() -> List[str]:
    """Include folders of the CUDA libraries the installed torch depends on, wherever a pip
    or conda torch puts them: site-packages/nvidia/*/include (pip), the environment's
    targets/*/include and include (conda; $PREFIX in conda-build)."""
    found = []
    try:
        import nvidia  # namespace package of the nvidia-* wheels that pip's torch depends on

        for base in getattr(nvidia, "__path__", []):
            found += sorted(glob.glob(os.path.join(base, "*", "include")))
    except ImportError:
        pass
    for prefix in filter(None, {os.environ.get("PREFIX"), os.environ.get("CONDA_PREFIX"), sys.prefix}):
        found += sorted(glob.glob(os.path.join(prefix, "targets", "*", "include")))
        if os.path.isfile(os.path.join(prefix, "include", "cusparse.h")):
            found.append(os.path.join(prefix, "include"))
    return list(dict.fromkeys(d for d in found if os.path.isdir(d)))


def _toolkit_include_dirs() -> List[str]:
    home = cpp_extension.CUDA_HOME or ""
    dirs = [os.path.join(home, "include")] + sorted(glob.glob(os.path.join(home, "targets", "*", "include")))
    return [d for d in dirs if os.path.isdir(d)]


def _nvcc_release() -> Optional[str]:
    nvcc = os.path.join(cpp_extension.CUDA_HOME or "", "bin", "nvcc")
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else None


def _cuda_problem() -> Optional[str]:
    """Why CUDA ops cannot be compiled here (None when they can)."""
    if torch.version.cuda is None:
        return f"the installed torch {torch.__version__} is a CPU-only build"
    if cpp_extension.CUDA_HOME is None:
        return "no CUDA toolkit found (no nvcc on PATH, CUDA_HOME unset)"
    release = _nvcc_release()
    if release is None:
        return f"{os.path.join(cpp_extension.CUDA_HOME, 'bin', 'nvcc')} does not run"
    if release.split(".")[0] != torch.version.cuda.split(".")[0]:
        return (f"nvcc at {cpp_extension.CUDA_HOME} is CUDA {release} but torch {torch.__version__} "
                f"is built for CUDA {torch.version.cuda} (set CUDA_HOME to a matching toolkit)")
    dirs = _toolkit_include_dirs() + _cuda_library_include_dirs()
    missing = [h for h in CUDA_LIBRARY_HEADERS if not any(os.path.isfile(os.path.join(d, h)) for d in dirs)]
    if missing:
        return (f"{', '.join(missing)} (needed by torch's CUDA headers) not found in {dirs or 'any include folder'}; "
                "install the CUDA libraries' headers (pip: the nvidia-* packages of your torch; "
                "conda: cuda-libraries-dev)")
    return None


def _want_cuda() -> bool:
    force = os.environ.get("FORCE_CUDA", "").strip()
    if force == "0":
        return False
    problem = _cuda_problem()
    if force == "1":
        if problem:
            sys.exit(f"error: FORCE_CUDA=1 but detectron2's CUDA ops cannot be compiled: {problem}; "
                     "fix that, or build the CPU ops only with FORCE_CUDA=0")
        return True
    asked = torch.cuda.is_available() or "TORCH_CUDA_ARCH_LIST" in os.environ
    if asked and problem:
        print(f"detectron2: building the CPU ops only: {problem} (FORCE_CUDA=0 silences this, "
              "FORCE_CUDA=1 makes it an error)", file=sys.stderr)
    return asked and problem is None


def _want_debug() -> bool:
    return os.environ.get("DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _sources(pattern: str) -> list:
    return sorted(glob.glob(os.path.join(CSRC, pattern), recursive=True))


def _extension():
    with_cuda = _want_cuda()
    sources = _sources("*.cpp") + _sources("cocoeval/*.cpp") + _sources("ops/*/*.cpp") + _sources("ops/*/cpu/*.cpp")
    define_macros = []
    debug = _want_debug()
    # Release: -g0 overrides the -g in Python's CFLAGS (it doubles compile time and .so
    # size for no user benefit) and -s strips the symbol table at link, as conda-build
    # and pip users expect; DEBUG=1 keeps both for gdb / compute-sanitizer line numbers.
    extra_compile_args = {"cxx": ["-O3", "-g" if debug else "-g0"]}
    extra_link_args = [] if debug else ["-s"]
    if with_cuda:
        sources += _sources("ops/*/cuda/*.cpp") + _sources("ops/*/cuda/*.cu")
        define_macros.append(("WITH_CUDA", None))
        # -compress-all also compresses the PTX (nvcc compresses only SASS by default), as
        # PyTorch's own builds do: the PTX of a "+PTX" arch is the largest part of _C.
        extra_compile_args["nvcc"] = ["-O3", "--expt-relaxed-constexpr", "-Xfatbin=-compress-all"]
        extra_compile_args["nvcc"] += ["-lineinfo"] if debug else []
        # After torch's and the toolkit's own -I (the toolkit's headers win), for the
        # library headers a bare toolkit lacks.
        library_includes = ["-I" + d for d in _cuda_library_include_dirs()]
        extra_compile_args["cxx"] += library_includes
        extra_compile_args["nvcc"] += library_includes
        extension_type = cpp_extension.CUDAExtension
    else:
        extension_type = cpp_extension.CppExtension
    return extension_type(
        "detectron2._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, CSRC)],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )


class BuildExtension(cpp_extension.BuildExtension):
    """An editable install (`pip install -e .`) compiles in a fresh temporary folder each
    time; give it the folder `setup.py build_ext --inplace` uses, so ninja reuses the
    objects scripts/build_inplace.sh already compiled."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if getattr(self, "editable_mode", False):
            tag = f"temp.{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
            self.build_temp = os.path.join(ROOT, "build", tag)


def _license() -> dict:
    """Apache-2.0 as an SPDX expression (setuptools >= 77, PEP 639); older setuptools, which
    the legacy torch 2.0 toolchain needs (< 70), only know the free-text field."""
    import setuptools

    major = int(setuptools.__version__.split(".")[0])
    return {"license_expression": "Apache-2.0"} if major >= 77 else {"license": "Apache-2.0"}


setup(
    **_license(),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension},
)

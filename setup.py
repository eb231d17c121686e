"""Build script for detectron2's compiled ops (``detectron2._C``).

Everything declarative (name, version, dependencies) lives in pyproject.toml; this file
only decides which sources to compile and whether to compile them for CUDA.

Environment variables:
  FORCE_CUDA=1          build the CUDA kernels even when no GPU is visible (build farms).
  FORCE_CUDA=0          build the C++ (CPU) ops only, even when a CUDA toolkit is found.
  TORCH_CUDA_ARCH_LIST  GPU architectures to compile for, e.g. "8.0;8.6+PTX" (read by torch).
  MAX_JOBS              parallel compile jobs (read by torch's ninja builder).
  DEBUG=1               keep debug info (host -g, device -lineinfo) and the symbol table;
                        the default is a release build: no debug info, stripped at link.
"""
import glob
import os
import sys

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


def _want_cuda() -> bool:
    force = os.environ.get("FORCE_CUDA", "").strip()
    if force == "0":
        return False
    has_toolkit = cpp_extension.CUDA_HOME is not None and torch.version.cuda is not None
    if force == "1":
        if not has_toolkit:
            sys.exit(
                "error: FORCE_CUDA=1 but no usable CUDA build environment: "
                f"CUDA_HOME={cpp_extension.CUDA_HOME!r}, torch.version.cuda={torch.version.cuda!r}; "
                "install a CUDA build of torch and the matching CUDA toolkit (nvcc), or unset FORCE_CUDA"
            )
        return True
    return has_toolkit and (torch.cuda.is_available() or "TORCH_CUDA_ARCH_LIST" in os.environ)


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
        extra_compile_args["nvcc"] = ["-O3", "--expt-relaxed-constexpr"] + (["-lineinfo"] if debug else [])
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


setup(
    ext_modules=[_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
)

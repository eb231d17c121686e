"""Name the cause of a failed ``import detectron2._C`` from the loader's message.

The dynamic loader's wording is stable (glibc's dlopen errors, CPython's import errors),
so a message maps to one of a few known causes, each with its own remedy.
"""
import re
from dataclasses import dataclass
from typing import Optional

# Causes, in the order they are tried.
TORCH_ABI = "torch-abi"  # undefined torch/c10/aten symbol: built against another torch
CUDA_SYMBOL = "cuda-symbol"  # undefined CUDA runtime symbol: nvcc/runtime or CPU-torch mismatch
PYTHON_ABI = "python-abi"  # undefined Py* symbol: built for another Python
CUDA_RUNTIME_MISSING = "cuda-runtime-missing"  # libcudart.so.X (or another CUDA lib) not found
TORCH_LIB_MISSING = "torch-lib-missing"  # libc10.so / libtorch*.so not found
GLIBCXX = "glibcxx"  # libstdc++ older than the one _C was built with
GLIBC = "glibc"  # glibc older than the one _C was built with
LIB_MISSING = "lib-missing"  # some other shared library not found
SOURCE_TREE = "source-tree"  # detectron2 resolves to a checkout without a built _C
NOT_BUILT = "not-built"  # installed package without _C
CRASHED = "crashed"  # importing _C killed the interpreter
UNKNOWN = "unknown"

_TORCH_NAMESPACES = ("3c10", "2at", "5torch", "6caffe2")
_CUDA_LIBS = ("libcudart", "libcublas", "libcudnn", "libcufft", "libcurand", "libcusparse",
              "libcusolver", "libnvrtc", "libnvToolsExt", "libnvJitLink", "libcuda.")
_TORCH_LIBS = ("libc10", "libtorch", "libshm", "libcaffe2")


@dataclass(frozen=True)
class LoaderDiagnosis:
    cause: str
    summary: str
    symbol: Optional[str] = None  # the undefined symbol or missing library/version, when named


def _is_torch_symbol(symbol: str) -> bool:
    # Itanium mangling: _ZN[K]<len><ns>..., vtables/typeinfo _ZT[VIS]N..., nested namespaces.
    m = re.match(r"^_Z(?:T[VIS])?N?K?(\d+[A-Za-z_]\w*)", symbol)
    return bool(m) and m.group(1).startswith(_TORCH_NAMESPACES)


def _is_cuda_symbol(symbol: str) -> bool:
    return bool(re.match(r"^(__cuda|cuda[A-Z_]|cu[A-Z]|cublas|cudnn|nvrtc)", symbol))


def classify(message: str, source_checkout: bool = False) -> LoaderDiagnosis:
    """The cause of an import failure of detectron2._C, from the exception text."""
    m = re.search(r"undefined symbol: (\S+)", message)
    if m:
        symbol = m.group(1).rstrip(",.;'\"")
        if _is_torch_symbol(symbol):
            abi = " (a C++ ABI mismatch shows as std::__cxx11 in the name)" if "cxx11" in symbol else ""
            return LoaderDiagnosis(TORCH_ABI, f"_C was built against a different PyTorch than the one installed{abi}", symbol)
        if _is_cuda_symbol(symbol):
            return LoaderDiagnosis(CUDA_SYMBOL, "_C needs CUDA runtime functions this environment does not provide", symbol)
        if re.match(r"^_?Py", symbol):
            return LoaderDiagnosis(PYTHON_ABI, "_C was built for a different Python version", symbol)
        return LoaderDiagnosis(UNKNOWN, "_C references a symbol no loaded library defines", symbol)
    m = re.search(r"version [`'](GLIBCXX_[\d.]+|CXXABI_[\d.]+)' not found", message)
    if m:
        return LoaderDiagnosis(GLIBCXX, "the C++ runtime (libstdc++) in use is older than the one _C was built with", m.group(1))
    m = re.search(r"version [`'](GLIBC_[\d.]+)' not found", message)
    if m:
        return LoaderDiagnosis(GLIBC, "the system C library (glibc) is older than the one _C was built with", m.group(1))
    m = re.search(r"(lib[\w+\-.]*?\.so[\d.]*): cannot open shared object file", message)
    if m:
        lib = m.group(1)
        if lib.startswith(_CUDA_LIBS):
            return LoaderDiagnosis(CUDA_RUNTIME_MISSING, f"_C needs {lib}, a CUDA library this environment does not have", lib)
        if lib.startswith(_TORCH_LIBS):
            return LoaderDiagnosis(TORCH_LIB_MISSING, f"PyTorch's library {lib} cannot be found (torch missing or broken)", lib)
        return LoaderDiagnosis(LIB_MISSING, f"_C needs {lib}, which cannot be found", lib)
    if re.search(r"cannot import name '_C'|No module named '?detectron2\._C'?", message):
        if source_checkout:
            return LoaderDiagnosis(SOURCE_TREE, "detectron2 is imported from a source checkout whose _C is not built")
        return LoaderDiagnosis(NOT_BUILT, "this detectron2 installation has no compiled _C")
    return LoaderDiagnosis(UNKNOWN, "_C cannot be imported")

"""Describe the software and hardware environment (``python -m detectron2.utils.collect_env``).

The table that bug reports paste. It never fails: a missing or broken ``_C``, a CPU-only
torch, no GPU and no nvidia-smi each show up as a row value, not as an exception. For a
diagnosis with fixes run ``python -m detectron2.doctor``.
"""
import importlib
import importlib.util
import os
import platform
import sys
import warnings
from typing import Callable, List, Optional, Tuple

from detectron2.utils._fatbin import FatbinError, format_arch_flags, read_fatbin_entries
from detectron2.utils._gpu_probe import probe_driver

__all__ = ["collect_env_info"]

Row = Tuple[str, str]


def _safe(fn: Callable[[], str]) -> str:
    try:
        return fn()
    except Exception as e:  # a row shows what went wrong instead of aborting the report
        return f"<error: {type(e).__name__}: {e}>"


def _module_version(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return "not available"
    except Exception as e:  # installed but broken
        return f"failed to import ({type(e).__name__}: {e})"
    version = getattr(module, "__version__", "unknown version")
    return f"{version} @{os.path.dirname(module.__file__ or '')}"


def _arch_flags_of(path: Optional[str]) -> str:
    if path is None:
        return "unknown (no shared object)"
    try:
        return format_arch_flags(read_fatbin_entries(path)) or "no device code"
    except FatbinError as e:
        return f"unknown ({e})"


def _extension_path(name: str) -> Optional[str]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin and os.path.isfile(spec.origin) else None


def _detectron2_rows() -> List[Row]:
    import detectron2

    rows = [("detectron2", f"{detectron2.__version__} @{os.path.dirname(detectron2.__file__)}")]
    try:
        import torch  # noqa: F401  (_C links against torch's libraries: load them first)

        C = importlib.import_module("detectron2._C")
    except Exception as e:
        rows.append(("detectron2._C", f"not built or failed to import: {type(e).__name__}: {e}"))
        return rows
    rows.append(("detectron2._C", f"ok @{C.__file__}"))
    rows.append(("Compiler", _safe(C.get_compiler_version)))
    if _safe(lambda: str(C.has_cuda())) == "True":
        rows.append(("CUDA compiler", _safe(C.get_cuda_version)))
        rows.append(("detectron2 arch flags", _arch_flags_of(_extension_path("detectron2._C"))))
    else:
        rows.append(("CUDA compiler", "not available (built without CUDA)"))
    return rows


def _torch_rows(torch) -> List[Row]:
    rows = [
        ("PyTorch", f"{torch.__version__} @{os.path.dirname(torch.__file__)}"),
        ("PyTorch debug build", str(torch.version.debug)),
        ("torch._C._GLIBCXX_USE_CXX11_ABI", _safe(lambda: str(torch._C._GLIBCXX_USE_CXX11_ABI))),
        ("PyTorch CUDA", str(torch.version.cuda or "not available (CPU build)")),
    ]
    if torch.version.cuda:
        rows.append(("PyTorch arch flags", _safe(lambda: torch._C._cuda_getArchFlags() or "none")))
        rows.append(("cuDNN", _safe(lambda: _cudnn_version(torch))))
    return rows


def _cudnn_version(torch) -> str:
    # torch.backends.cudnn.version() initialises CUDA; the raw binding only loads libcudnn.
    binding = getattr(torch._C, "_cudnn", None)
    if binding is None:
        return "not available"
    runtime = ".".join(str(v) for v in binding.getRuntimeVersion())
    compiled = ".".join(str(v) for v in binding.getCompileVersion())
    return runtime if runtime == compiled else f"{runtime} (torch built with {compiled})"


def _gpu_rows(torch) -> List[Row]:
    driver = probe_driver()
    if not driver.present:
        return [("GPU available", "No: no NVIDIA driver on this machine")]
    available = bool(torch is not None and torch.version.cuda and torch.cuda.is_available())
    rows = [("GPU available", "Yes" if available else "No: torch.cuda.is_available() == False")]
    for gpu in driver.gpus:
        rows.append((f"GPU {gpu.index}", f"{gpu.name} (arch={gpu.arch})"))
    if driver.error:
        rows.append(("GPU query", driver.error))
    rows.append(("Driver version", driver.version or "unknown"))
    rows.append(("Driver CUDA version", driver.cuda_version or "unknown"))
    return rows


def _environment_rows() -> List[Row]:
    rows = [
        ("CUDA_HOME", os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "<not set>"),
        ("TORCH_CUDA_ARCH_LIST", os.environ.get("TORCH_CUDA_ARCH_LIST", "<not set>")),
        ("DETECTRON2_ENV_MODULE", os.environ.get("DETECTRON2_ENV_MODULE", "<not set>")),
        ("Pillow", _module_version("PIL")),
        ("torchvision", _module_version("torchvision")),
    ]
    tv_ext = _extension_path("torchvision._C")
    if tv_ext is not None:
        rows.append(("torchvision arch flags", _arch_flags_of(tv_ext)))
    for name in ("fvcore", "iopath", "cv2"):
        rows.append((name, _module_version(name)))
    return rows


def _torch_config(torch) -> str:
    # show() probes the CUDA driver; its warnings (e.g. about a driver library without a
    # kernel module) would only repeat what the GPU rows already say.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _safe(torch.__config__.show)


def _format_table(rows: List[Row]) -> str:
    width = max(len(k) for k, _ in rows)
    rule = "-" * width + "  " + "-" * min(100, max(len(v) for _, v in rows))
    lines = [rule] + [f"{k.ljust(width)}  {v}" for k, v in rows] + [rule]
    return "\n".join(lines)


def collect_rows() -> List[Row]:
    """The (field, value) rows of the report, in upstream's order."""
    rows: List[Row] = [
        ("sys.platform", sys.platform),
        ("Platform", platform.platform()),
        ("Python", sys.version.replace("\n", " ")),
        ("numpy", _module_version("numpy")),
    ]
    rows += _detectron2_rows()
    try:
        import torch
    except Exception as e:
        torch = None
        rows.append(("PyTorch", f"not available ({type(e).__name__}: {e})"))
    if torch is not None:
        rows += _torch_rows(torch)
    rows += _gpu_rows(torch)
    return rows + _environment_rows()


def collect_env_info() -> str:
    """The environment as a two-column table, followed by torch's build configuration."""
    text = _format_table(collect_rows())
    torch = sys.modules.get("torch")
    if torch is not None:
        text += "\n" + _torch_config(torch)
    return text


def main() -> None:
    print(collect_env_info())


if __name__ == "__main__":
    main()

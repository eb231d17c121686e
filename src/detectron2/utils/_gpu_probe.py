"""The NVIDIA driver and the GPUs it sees, asked directly (no torch, no nvidia-smi).

torch can only list GPUs when it is a CUDA build whose runtime the driver accepts, which
is exactly what a diagnosis cannot assume. This module reads the kernel module's version
file and asks the driver API (libcuda.so.1) through ctypes: that works with a CPU-only
torch, with a broken torch, and costs a few milliseconds. On a machine without an NVIDIA
kernel module nothing is loaded at all.
"""
import ctypes
import os
import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

__all__ = ["GPU", "DriverInfo", "driver_present", "probe_driver", "read_kernel_module_version"]

_PROC_VERSION = "/proc/driver/nvidia/version"
# Device nodes of the Linux driver, and of WSL2's GPU paravirtualisation.
_DEVICE_NODES = ("/dev/nvidiactl", "/dev/dxg")

# CUresult codes worth naming in a diagnosis (cuda.h).
CU_ERRORS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    34: "CUDA_ERROR_STUB_LIBRARY",
    35: "CUDA_ERROR_INSUFFICIENT_DRIVER",
    100: "CUDA_ERROR_NO_DEVICE",
    101: "CUDA_ERROR_INVALID_DEVICE",
    803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
    804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
    999: "CUDA_ERROR_UNKNOWN",
}
_ATTR_CC_MAJOR = 75  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
_ATTR_CC_MINOR = 76


@dataclass(frozen=True)
class GPU:
    index: int
    name: str
    capability: Tuple[int, int]

    @property
    def arch(self) -> str:
        return f"{self.capability[0]}.{self.capability[1]}"


@dataclass
class DriverInfo:
    present: bool  # an NVIDIA kernel module or device node exists
    version: Optional[str] = None  # driver version, e.g. "535.104.05"
    cuda_version: Optional[str] = None  # newest CUDA the driver supports, e.g. "12.2"
    gpus: List[GPU] = field(default_factory=list)
    libcuda_path: Optional[str] = None
    error: Optional[str] = None  # why the driver API could not list GPUs
    error_code: Optional[int] = None


def driver_present() -> bool:
    return os.path.exists(_PROC_VERSION) or any(os.path.exists(p) for p in _DEVICE_NODES)


def read_kernel_module_version(path: str = _PROC_VERSION) -> Optional[str]:
    """"NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  ..." -> "535.104.05"."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else None


def _nvml_driver_version() -> Optional[str]:
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    if nvml.nvmlInit_v2() != 0:
        return None
    try:
        buf = ctypes.create_string_buffer(96)
        if nvml.nvmlSystemGetDriverVersion(buf, ctypes.c_uint(len(buf))) != 0:
            return None
        return buf.value.decode(errors="replace") or None
    finally:
        nvml.nvmlShutdown()


def _loaded_path(fragment: str) -> Optional[str]:
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if fragment in os.path.basename(path):
                    return path
    except OSError:
        pass
    return None


def _cu_error(code: int) -> str:
    return f"{CU_ERRORS.get(code, 'CUresult')} ({code})"


def _query_driver_api(info: DriverInfo) -> None:
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        info.error = f"libcuda.so.1 cannot be loaded: {e}"
        return
    info.libcuda_path = _loaded_path("libcuda.so")
    version = ctypes.c_int(0)
    if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
        info.cuda_version = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    rc = cuda.cuInit(0)
    if rc != 0:
        info.error, info.error_code = f"cuInit failed: {_cu_error(rc)}", rc
        return
    count = ctypes.c_int(0)
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        info.error, info.error_code = f"cuDeviceGetCount failed: {_cu_error(rc)}", rc
        return
    for index in range(count.value):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        if cuda.cuDeviceGet(ctypes.byref(device), index) != 0:
            continue
        cuda.cuDeviceGetName(name, ctypes.c_int(len(name)), device)
        cuda.cuDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, device)
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, device)
        info.gpus.append(GPU(index, name.value.decode(errors="replace"), (major.value, minor.value)))


def probe_driver() -> DriverInfo:
    """What the NVIDIA driver reports; cheap and side-effect free without a driver."""
    if not driver_present():
        return DriverInfo(present=False)
    info = DriverInfo(present=True, version=read_kernel_module_version())
    _query_driver_api(info)
    if info.version is None:
        info.version = _nvml_driver_version()
    return info

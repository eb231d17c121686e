"""NVIDIA's published compatibility tables that the checks compare against.

Sources: the CUDA Toolkit release notes (table "CUDA Toolkit and Minimum Required Driver
Version", Linux x86_64, GA releases, and the minor-version-compatibility minimums) and
the CUDA installation guide's supported host compilers (the `__GNUC__` bound that
nvcc's crt/host_config.h enforces).
"""
import re
from typing import Optional, Tuple

from detectron2.utils.variants import MIN_LINUX_DRIVER

# Driver needed for the full feature set of a toolkit release (including JIT of its PTX).
_TOOLKIT_MIN_DRIVER = {
    "10.0": "410.48",
    "10.1": "418.39",
    "10.2": "440.33",
    "11.0": "450.36.06",
    "11.1": "455.23",
    "11.2": "460.27.03",
    "11.3": "465.19.01",
    "11.4": "470.42.01",
    "11.5": "495.29.05",
    "11.6": "510.39.01",
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

# From CUDA 11 on, a runtime of major X runs on any driver of X's first release
# ("minor version compatibility"), minus features such as JIT of newer PTX.
_MINOR_COMPAT_MIN_DRIVER = {
    "11": "450.80.02",
    "12": "525.60.13",
    "13": "580.65.06",
}

# Newest GCC major each nvcc release accepts as host compiler.
_NVCC_MAX_GCC = {
    "10.1": 8,
    "10.2": 8,
    "11.0": 9,
    "11.1": 10,
    "11.2": 10,
    "11.3": 10,
    "11.4": 11,
    "11.5": 11,
    "11.6": 11,
    "11.7": 11,
    "11.8": 11,
    "12.0": 12,
    "12.1": 12,
    "12.2": 12,
    "12.3": 12,
    "12.4": 13,
    "12.5": 13,
    "12.6": 13,
    "12.8": 14,
    "12.9": 14,
    "13.0": 15,
}


def version_tuple(version: str) -> Tuple[int, ...]:
    """"535.104.05" -> (535, 104, 5); non-numeric tails are ignored ("2.0.1+cu117" -> (2, 0, 1))."""
    parts = []
    for piece in re.split(r"[.+]", version.strip()):
        m = re.match(r"^\d+", piece)
        if not m:
            break
        parts.append(int(m.group(0)))
    return tuple(parts)


def major_minor(version: str) -> str:
    numbers = version_tuple(version)
    if len(numbers) < 2:
        raise ValueError(f"version: expected 'major.minor[...]', got {version!r}")
    return f"{numbers[0]}.{numbers[1]}"


def toolkit_min_driver(cuda: str) -> Optional[str]:
    """Lowest Linux driver with the full feature set of this CUDA release (None: unknown)."""
    key = major_minor(cuda)
    return MIN_LINUX_DRIVER.get(key) or _TOOLKIT_MIN_DRIVER.get(key)


def minor_compat_min_driver(cuda: str) -> Optional[str]:
    """Lowest Linux driver that runs this CUDA release at all (minor version compatibility)."""
    major = str(version_tuple(cuda)[0])
    return _MINOR_COMPAT_MIN_DRIVER.get(major) or toolkit_min_driver(cuda)


def nvcc_max_gcc(nvcc: str) -> Optional[int]:
    return _NVCC_MAX_GCC.get(major_minor(nvcc))


def at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)

"""The driver probe's ctypes calls against stand-in libcuda / libnvidia-ml objects built with
gcc from the driver API's C prototypes: argument passing is exercised for real, no GPU needed."""
import pytest

from detectron2.utils import _gpu_probe
from detectron2.utils._gpu_probe import GPU, probe_driver

FAKE_LIBCUDA = r"""
#include <stdio.h>
typedef int CUresult;
typedef int CUdevice;
CUresult cuDriverGetVersion(int* version) { *version = 12020; return 0; }
CUresult cuInit(unsigned int flags) { return flags == 0 ? INIT_RESULT : 1; }
CUresult cuDeviceGetCount(int* count) { *count = 2; return 0; }
CUresult cuDeviceGet(CUdevice* device, int ordinal) { *device = 100 + ordinal; return 0; }
CUresult cuDeviceGetName(char* name, int len, CUdevice device) {
  snprintf(name, (size_t)len, "Stand-in GPU %d", device - 100); return 0;
}
CUresult cuDeviceGetAttribute(int* value, int attribute, CUdevice device) {
  if (attribute == 75) { *value = device == 100 ? 9 : 8; return 0; }
  if (attribute == 76) { *value = device == 100 ? 0 : 6; return 0; }
  return 1;
}
"""

FAKE_NVML = r"""
#include <string.h>
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  if (length < 16) return 7;
  strcpy(version, "550.54.15"); return 0;
}
"""


@pytest.fixture
def driver_installed(monkeypatch):
    monkeypatch.setattr(_gpu_probe, "driver_present", lambda: True)


def test_gpus_from_the_driver_api(compile_so, driver_installed, tmp_path):
    libcuda = compile_so("libcuda.so.1", FAKE_LIBCUDA, "-DINIT_RESULT=0")
    proc = tmp_path / "version"
    proc.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 2023\n")
    info = probe_driver(libcuda=str(libcuda), libnvml=str(tmp_path / "none.so"), proc_version=str(proc))
    assert info.present and info.error is None
    assert info.version == "535.104.05" and info.cuda_version == "12.2"
    assert info.gpus == [GPU(0, "Stand-in GPU 0", (9, 0)), GPU(1, "Stand-in GPU 1", (8, 6))]
    assert info.libcuda_path and info.libcuda_path.endswith("libcuda.so.1")


def test_driver_version_from_nvml_without_proc(compile_so, driver_installed, tmp_path):
    libcuda = compile_so("libcuda.so.1", FAKE_LIBCUDA, "-DINIT_RESULT=0")
    nvml = compile_so("libnvidia-ml.so.1", FAKE_NVML)
    info = probe_driver(libcuda=str(libcuda), libnvml=str(nvml), proc_version=str(tmp_path / "missing"))
    assert info.version == "550.54.15"


def test_stub_library_is_named(compile_so, driver_installed, tmp_path):
    stub = compile_so("libcuda.so.1", FAKE_LIBCUDA, "-DINIT_RESULT=34")
    info = probe_driver(libcuda=str(stub), libnvml=str(tmp_path / "none.so"), proc_version=str(tmp_path / "missing"))
    assert info.error_code == 34 and "CUDA_ERROR_STUB_LIBRARY" in info.error
    assert info.gpus == [] and info.cuda_version == "12.2"


def test_unloadable_libcuda(driver_installed, tmp_path):
    info = probe_driver(libcuda=str(tmp_path / "libcuda.so.1"), libnvml=str(tmp_path / "x.so"),
                        proc_version=str(tmp_path / "missing"))
    assert info.present and info.gpus == [] and "cannot be loaded" in info.error

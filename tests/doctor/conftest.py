"""Facts of known machines for the doctor's tests: every fact is set, none is probed.

`healthy_gpu_facts` describes a pip environment with torch 2.0.1+cu117 and a matching
CUDA _C on one A100 with a 535 driver; each test breaks one thing in it.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from doctor_helpers import A100, make_package
from detectron2.doctor.facts import ExtInfo, Facts, Toolchain, TorchInfo
from detectron2.utils._fatbin import parse_arch_list
from detectron2.utils._gpu_probe import DriverInfo


@pytest.fixture
def env_dirs(tmp_path):
    """A fake environment prefix with a site-packages holding torch and detectron2."""
    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    torch_dir = make_package(site, "torch")
    d2_dir = make_package(site, "detectron2")
    work = tmp_path / "work"
    work.mkdir()
    return {"prefix": prefix, "site": site, "torch": torch_dir, "detectron2": d2_dir, "cwd": work}


def _facts(env_dirs, gpus, driver_present=True) -> Facts:
    site = env_dirs["site"]
    f = Facts(environ={"PATH": os.environ.get("PATH", "")}, sys_path=[str(site)], cwd=str(env_dirs["cwd"]),
              prefix=str(env_dirs["prefix"]))
    f.python = "3.11.7"
    f.torch = TorchInfo(version="2.0.1+cu117", path=str(env_dirs["torch"]), cuda="11.7", cudnn="8.5.0",
                        cudnn_compiled="8.5.0", arch_flags="sm_37 sm_50 sm_60 sm_70 sm_75 sm_80 sm_86",
                        cxx11_abi=False, installer="pip")
    f.torch_error = None
    f.torch_cuda_available = bool(gpus)
    f.detectron2_path = str(env_dirs["detectron2"])
    f.detectron2_version = "0.7.0"
    f.ext = ExtInfo(path=str(env_dirs["detectron2"] / "_C.cpython-311-x86_64-linux-gnu.so"), loaded=True,
                    has_cuda=True, cuda_version="11.7", compiler="GCC 11.4")
    f.ext_entries = parse_arch_list("8.0;8.6+PTX")
    f.driver = DriverInfo(present=driver_present, version="535.104.05" if driver_present else None,
                          cuda_version="12.2" if driver_present else None, gpus=list(gpus))
    f.loaded_libraries = []
    f.toolchain = Toolchain(cuda_home=None)
    return f


@pytest.fixture
def healthy_gpu_facts(env_dirs) -> Facts:
    return _facts(env_dirs, [A100])


@pytest.fixture
def healthy_cpu_facts(env_dirs) -> Facts:
    f = _facts(env_dirs, [], driver_present=False)
    f.torch.cuda, f.torch.cudnn, f.torch.cudnn_compiled, f.torch.arch_flags = None, None, None, ""
    f.torch.version = "2.0.1+cpu"
    f.ext.has_cuda, f.ext.cuda_version = False, None
    f.ext_entries = []
    return f


@pytest.fixture
def compile_so(tmp_path):
    """Compile C source into a shared object with gcc (real loader behaviour, no mocks)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler is needed to build the loader fixtures"

    def build(name: str, source: str, *extra: str) -> Path:
        src = tmp_path / f"{name}.c"
        src.write_text(source)
        out = tmp_path / name
        subprocess.run([gcc, "-shared", "-fPIC", "-o", str(out), str(src), *extra], check=True, capture_output=True)
        return out

    return build

"""The facts layer against the real machine and real files (no GPU needed)."""
import os

import torch
from doctor_helpers import make_conda, make_package

from detectron2.doctor.facts import Facts
from detectron2.utils._gpu_probe import DriverInfo, driver_present, probe_driver, read_kernel_module_version


def test_torch_facts_match_torch():
    facts = Facts()
    info = facts.torch
    assert info.version == torch.__version__ and info.cuda == torch.version.cuda
    assert info.path == os.path.dirname(os.path.realpath(torch.__file__))
    if torch.version.cuda:
        assert info.arch_flags == torch._C._cuda_getArchFlags()
    assert facts.torch_installs[0] == info.path


def test_loaded_libraries_see_torch():
    libs = Facts().loaded_libraries
    assert any(os.path.basename(p).startswith("libtorch_cpu") for p in libs)


def test_conda_environment_facts(tmp_path):
    make_conda(tmp_path, "pytorch-2.0.1-py3.11_cuda11.7_cudnn8.5.0_0", "pytorch-mutex-1.0-cuda", "python-3.11.4-h955ad1f_0")
    facts = Facts(prefix=str(tmp_path))
    assert facts.is_conda and facts.env_kind == "conda"
    assert facts.conda_packages["pytorch"] == ("2.0.1", "py3.11_cuda11.7_cudnn8.5.0_0")
    assert facts.conda_packages["pytorch-mutex"] == ("1.0", "cuda")
    assert not Facts(prefix=str(tmp_path / "nothing")).is_conda


def test_conda_tool_prefers_mamba(tmp_path):
    assert Facts(environ={"PATH": str(tmp_path)}).conda_tool == "conda"
    assert Facts(environ={"PATH": str(tmp_path), "MAMBA_EXE": "/opt/mamba"}).conda_tool == "mamba"


def test_packages_on_path_in_import_order(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    make_package(first, "torch")
    make_package(second, "torch")
    facts = Facts(sys_path=[str(first), str(tmp_path / "empty"), str(second), str(first)])
    assert facts.torch_installs == [str((first / "torch").resolve()), str((second / "torch").resolve())]


def test_installer_is_read_from_dist_info():
    facts = Facts()
    site = os.path.dirname(facts.torch.path)
    dist = [d for d in os.listdir(site) if d.startswith("torch-") and d.endswith(".dist-info")]
    if dist:  # a pip-style install: INSTALLER names the tool
        with open(os.path.join(site, dist[0], "INSTALLER")) as f:
            assert facts.torch.installer == f.read().strip()
    else:
        assert facts.torch.installer is None


def test_driver_probe_matches_this_machine():
    info = probe_driver()
    assert info.present == driver_present()
    if not info.present:  # nothing was loaded or asked
        assert info == DriverInfo(present=False)
    else:
        assert info.version is not None or info.error is not None


def test_kernel_module_version_parsing(tmp_path):
    proprietary = tmp_path / "v1"
    proprietary.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
                           "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")
    assert read_kernel_module_version(str(proprietary)) == "535.104.05"
    open_module = tmp_path / "v2"
    open_module.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n")
    assert read_kernel_module_version(str(open_module)) == "570.86.15"
    assert read_kernel_module_version(str(tmp_path / "missing")) is None


def test_extension_facts_of_this_build():
    facts = Facts()
    ext = facts.ext
    if ext.loaded:
        import detectron2._C as C

        assert ext.has_cuda == C.has_cuda() and ext.compiler == C.get_compiler_version()
        assert ext.path == os.path.realpath(C.__file__)
        assert facts.ext_entries is not None
    else:
        assert ext.error

"""Fault injection: each check passes on a healthy setup and fires on its broken one."""
import os
import stat

import pytest
from doctor_helpers import DATA, H100, P100, T4, make_conda, make_package

from detectron2.doctor.checks.arch import check_ext_arch, check_torch_arch
from detectron2.doctor.checks.driver import check_driver
from detectron2.doctor.checks.environment import check_ld_library_path, check_source_tree
from detectron2.doctor.checks.extension import check_ext_cuda, check_ext_cuda_version
from detectron2.doctor.checks.toolchain import check_host_compiler
from detectron2.doctor.checks.torch_install import check_cudnn, check_torch, check_torch_cuda_build, check_torch_installs
from detectron2.doctor.facts import ExtInfo, Toolchain
from detectron2.doctor.result import FAIL, OK, SKIP, WARN
from detectron2.utils._fatbin import parse_arch_list
from detectron2.utils._gpu_probe import GPU, DriverInfo

ALL = [check_torch, check_torch_installs, check_driver, check_torch_cuda_build, check_cudnn, check_torch_arch,
       check_ext_cuda, check_ext_cuda_version, check_ext_arch, check_ld_library_path, check_source_tree,
       check_host_compiler]


@pytest.mark.parametrize("check", ALL, ids=lambda c: c.__name__)
def test_healthy_gpu_machine_passes(healthy_gpu_facts, check):
    assert check(healthy_gpu_facts).status in (OK, SKIP)


@pytest.mark.parametrize("check", ALL, ids=lambda c: c.__name__)
def test_healthy_cpu_machine_passes(healthy_cpu_facts, check):
    assert check(healthy_cpu_facts).status in (OK, SKIP)


# --- torch -------------------------------------------------------------------------------


def test_torch_missing(healthy_gpu_facts):
    healthy_gpu_facts.torch, healthy_gpu_facts.torch_error = None, "ModuleNotFoundError: No module named 'torch'"
    result = check_torch(healthy_gpu_facts)
    assert result.status == FAIL and "No module named 'torch'" in result.evidence[0]
    assert any(line.startswith("pip install torch==") for line in result.fix)


def test_cpu_torch_on_gpu_machine(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.torch.cuda, facts.torch.version = None, "2.0.1+cpu"
    result = check_torch_cuda_build(facts)
    assert result.status == FAIL and "CPU-only" in result.summary
    # A100 + 535 driver: the variant conda's solver picks there (the anchor, cu117).
    assert result.fix[0] == "pip install torch==2.0.1 torchvision==0.15.2 --index-url https://download.pytorch.org/whl/cu117"


def test_conda_cpu_mutex_on_gpu_machine(env_dirs, healthy_gpu_facts):
    make_conda(env_dirs["prefix"], "pytorch-2.0.1-py3.11_cpu_0", "pytorch-mutex-1.0-cpu")
    facts = healthy_gpu_facts
    facts.torch.cuda, facts.torch.installer = None, "conda"
    result = check_torch_cuda_build(facts)
    assert result.status == FAIL
    assert "pytorch-mutex 1.0 cpu" in " ".join(result.evidence)
    assert result.fix[0].startswith("conda install --force-reinstall -c detectron2-neo -c pytorch -c nvidia -c conda-forge")
    assert "pytorch-cuda=11.7" in result.fix[0] and "cpuonly" not in result.fix[0]  # A100: the anchor


def test_cpu_torch_without_gpu_is_right(healthy_cpu_facts):
    assert check_torch_cuda_build(healthy_cpu_facts).status == OK


def test_second_torch_on_sys_path(tmp_path, healthy_gpu_facts):
    other = tmp_path / "other_site"
    make_package(other, "torch")
    facts = healthy_gpu_facts
    facts.sys_path = [str(other)] + facts.sys_path
    result = check_torch_installs(facts)
    assert result.status == FAIL and "2 torch installations" in result.summary
    assert str(other / "torch") in result.summary


def test_cwd_torch_counts_as_an_install(env_dirs, healthy_gpu_facts):
    make_package(env_dirs["cwd"], "torch")
    facts = healthy_gpu_facts
    facts.sys_path = [""] + facts.sys_path
    assert check_torch_installs(facts).status == FAIL


def test_pip_torch_shadows_conda_torch(env_dirs, healthy_gpu_facts):
    make_conda(env_dirs["prefix"], "pytorch-2.0.1-py3.11_cuda11.7_cudnn8.5.0_0", "pytorch-mutex-1.0-cuda")
    facts = healthy_gpu_facts
    facts.torch.installer = "pip"
    result = check_torch_installs(facts)
    assert result.status == FAIL and "pip-installed torch shadows" in result.summary
    assert result.fix[0] == "pip uninstall -y torch torchvision"
    assert result.fix[1].startswith("conda install")


def test_python_outside_the_active_conda_env(env_dirs, healthy_gpu_facts, tmp_path):
    facts = healthy_gpu_facts
    facts.environ["CONDA_PREFIX"] = str(tmp_path / "miniconda3" / "envs" / "det")
    result = check_torch_installs(facts)
    assert result.status == WARN and "not the active conda environment" in result.summary
    facts.environ["CONDA_PREFIX"] = str(env_dirs["prefix"])
    assert check_torch_installs(facts).status == OK


def test_conda_torch_is_fine(env_dirs, healthy_gpu_facts):
    make_conda(env_dirs["prefix"], "pytorch-2.0.1-py3.11_cuda11.7_cudnn8.5.0_0", "pytorch-mutex-1.0-cuda")
    healthy_gpu_facts.torch.installer = "conda"
    assert check_torch_installs(healthy_gpu_facts).status == OK


def test_cudnn_missing_mismatched_disabled(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.torch.cudnn = None
    assert check_cudnn(facts).status == FAIL
    facts.torch.cudnn = "8.2.1"
    result = check_cudnn(facts)
    assert result.status == FAIL and "8.2.1" in result.summary
    facts.torch.cudnn, facts.torch.cudnn_enabled = "8.5.0", False
    assert check_cudnn(facts).status == WARN


def test_cudnn_9_11_drops_old_gpus(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.torch.cudnn = facts.torch.cudnn_compiled = "9.11.0"
    facts.driver.gpus = [P100]
    assert check_cudnn(facts).status == FAIL


# --- driver ------------------------------------------------------------------------------


def test_driver_older_than_torch_cuda(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.driver.version, facts.driver.cuda_version = "470.57.02", "11.4"
    facts.torch.cuda = "12.1"
    facts.ext.loaded = False
    result = check_driver(facts)
    assert result.status == FAIL and "torch needs CUDA 12.1" in result.summary
    assert result.fix[0] == "update the NVIDIA driver to >= 530.30.02"


def test_driver_minor_version_compatibility_warns(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.driver.version, facts.driver.cuda_version = "470.57.02", "11.4"
    result = check_driver(facts)  # torch and _C are CUDA 11.7
    assert result.status == WARN and "minor-version" in result.summary


def test_driver_older_than_ext_cuda(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.ext.cuda_version = "13.0"
    result = check_driver(facts)
    assert result.status == FAIL and result.summary.startswith("detectron2._C needs CUDA 13.0")
    assert result.fix[0] == "update the NVIDIA driver to >= 580.65.06"


@pytest.mark.parametrize("version, status", [("535.104.05", OK), ("470.57.02", WARN), ("440.33.01", FAIL)])
def test_driver_table_without_driver_api(healthy_gpu_facts, version, status):
    facts = healthy_gpu_facts
    facts.driver.cuda_version = None  # only the kernel module's version is known
    facts.driver.version = version
    assert check_driver(facts).status == status


def test_driver_stub_and_mismatch_and_no_device(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.driver = DriverInfo(present=True, version="535.104.05", error="cuInit failed: CUDA_ERROR_STUB_LIBRARY (34)",
                              error_code=34)
    assert check_driver(facts).status == FAIL and "stub" in check_driver(facts).summary
    facts.driver = DriverInfo(present=True, version="535.104.05", error="cuInit failed", error_code=803)
    assert check_driver(facts).status == FAIL
    facts.driver = DriverInfo(present=True, version="535.104.05", error="cuInit failed", error_code=100)
    assert check_driver(facts).status == WARN


def test_no_driver_is_skipped(healthy_cpu_facts):
    assert check_driver(healthy_cpu_facts).status == SKIP


# --- _C ------------------------------------------------------------------------------------


def test_ext_without_cuda_on_gpu_machine(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.ext.has_cuda, facts.ext.cuda_version = False, None
    result = check_ext_cuda(facts)
    assert result.status == FAIL and "Not compiled with GPU support" in result.summary
    assert any("FORCE_CUDA=1" in line for line in result.fix)


def test_ext_cuda_version_differs(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.ext.cuda_version = "11.8"
    assert check_ext_cuda_version(facts).status == WARN
    facts.ext.cuda_version = "12.1"
    assert check_ext_cuda_version(facts).status == FAIL
    facts.ext.cuda_version, facts.torch.cuda = "11.7", None
    assert check_ext_cuda_version(facts).status == FAIL


def test_ext_not_loaded_skips_dependent_checks(healthy_gpu_facts):
    healthy_gpu_facts.ext = ExtInfo(path=None, loaded=False, error="No module named 'detectron2._C'")
    for check in (check_ext_cuda, check_ext_cuda_version, check_ext_arch):
        assert check(healthy_gpu_facts).status == SKIP


# --- kernel images ---------------------------------------------------------------------------


def test_ext_arch_from_a_real_fatbinary(healthy_gpu_facts):
    facts = healthy_gpu_facts  # fatbin_a: sm_80, sm_90, compute_90
    del facts.ext_entries
    facts.ext.path = str(DATA / "fatbin_a.so.bin")
    result = check_ext_arch(facts)
    assert result.status == OK and "SASS sm_80" in " ".join(result.evidence)


def test_ext_arch_without_the_gpus_arch(healthy_gpu_facts):
    facts = healthy_gpu_facts
    del facts.ext_entries
    facts.ext.path = str(DATA / "fatbin_a.so.bin")  # nothing for sm_75
    facts.driver.gpus = [T4]
    result = check_ext_arch(facts)
    assert result.status == FAIL and "no kernel image is available" in result.summary
    assert result.fix[0] == "export TORCH_CUDA_ARCH_LIST='7.5'"


def test_ext_arch_ptx_jit(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.driver.gpus = [H100]  # 8.0;8.6+PTX: the H100 JIT-compiles compute_86
    result = check_ext_arch(facts)
    assert result.status == OK and "PTX compute_86" in " ".join(result.evidence)
    facts.ext.cuda_version = "12.4"  # PTX newer than the 12.2 driver cannot be JIT-compiled
    assert check_ext_arch(facts).status == FAIL


def test_ext_arch_fix_for_conda(env_dirs, healthy_gpu_facts):
    make_conda(env_dirs["prefix"], "pytorch-2.0.1-py3.11_cuda11.7_cudnn8.5.0_0", "detectron2-0.7.0-cu117_0")
    facts = healthy_gpu_facts
    facts.torch.installer = "conda"
    facts.ext_entries = parse_arch_list("8.0;8.6")
    facts.driver.gpus = [H100]
    result = check_ext_arch(facts)
    assert result.status == FAIL
    assert "pytorch-cuda=11.8" in result.fix[0]  # cu118 carries sm_90


def test_pypi_torch_201_cannot_run_on_hopper(healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.driver.gpus = [H100]  # PyPI 2.0.1: sm_37..sm_86, no PTX
    result = check_torch_arch(facts)
    assert result.status == FAIL and "H100" in result.summary
    facts.torch.arch_flags = "sm_80 sm_86 sm_90"
    assert check_torch_arch(facts).status == OK


# --- LD_LIBRARY_PATH -------------------------------------------------------------------------


def _lib_dir(root, *names):
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(b"\x7fELF fake")
    return root


def test_polluted_ld_library_path_other_major_warns(tmp_path, healthy_gpu_facts):
    lib = _lib_dir(tmp_path / "usr-local-cuda-11.0" / "lib64", "libcudart.so.11.0")
    facts = healthy_gpu_facts
    facts.torch.cuda = "13.0"
    facts.environ["LD_LIBRARY_PATH"] = str(lib)
    result = check_ld_library_path(facts)
    assert result.status == WARN and "libcudart.so.11.0" in " ".join(result.evidence)
    assert result.fix == ["unset LD_LIBRARY_PATH"]


def test_polluted_ld_library_path_same_major_fails(tmp_path, env_dirs, healthy_gpu_facts):
    _lib_dir(env_dirs["site"] / "nvidia" / "cuda_runtime" / "lib", "libcudart.so.11.0")  # pip's CUDA wheel
    lib = _lib_dir(tmp_path / "cuda-11.0" / "lib64", "libcudart.so.11.0")
    facts = healthy_gpu_facts  # torch CUDA 11.7 uses libcudart.so.11.0
    facts.environ["LD_LIBRARY_PATH"] = f"{lib}:/opt/keep/lib"
    facts.environ["LOADEDMODULES"] = "gcc/11.2:cuda/11.0"
    result = check_ld_library_path(facts)
    assert result.status == FAIL
    assert result.fix == ["export LD_LIBRARY_PATH=/opt/keep/lib", "module unload cuda"]


def test_library_actually_loaded_from_ld_library_path(tmp_path, env_dirs, healthy_gpu_facts):
    _lib_dir(env_dirs["torch"] / "lib", "libcudnn.so.7")
    lib = _lib_dir(tmp_path / "cudnn-8.2" / "lib", "libcudnn.so.7")
    facts = healthy_gpu_facts
    facts.environ["LD_LIBRARY_PATH"] = str(lib)
    facts.loaded_libraries = [str(lib / "libcudnn.so.7")]
    result = check_ld_library_path(facts)
    assert result.status == FAIL and "override" in result.summary


def test_system_cuda_as_the_only_provider_is_fine(tmp_path, healthy_gpu_facts):
    # Containers that build torch against /usr/local/cuda: nothing in the env to override.
    lib = _lib_dir(tmp_path / "usr-local-cuda" / "lib64", "libcudart.so.11.0", "libcudnn.so.8")
    facts = healthy_gpu_facts
    facts.environ["LD_LIBRARY_PATH"] = str(lib)
    facts.loaded_libraries = [str(lib / "libcudart.so.11.0"), str(lib / "libcudnn.so.8")]
    assert check_ld_library_path(facts).status == OK


def test_stub_libcuda_on_ld_library_path(tmp_path, healthy_gpu_facts):
    lib = _lib_dir(tmp_path / "cuda" / "lib64" / "stubs", "libcuda.so")
    healthy_gpu_facts.environ["LD_LIBRARY_PATH"] = str(lib)
    result = check_ld_library_path(healthy_gpu_facts)
    assert result.status == FAIL and "stub" in result.summary


def test_driver_library_dir_on_ld_library_path_is_fine(tmp_path, env_dirs, healthy_gpu_facts):
    # Seen on the H100 containers: LD_LIBRARY_PATH=/usr/local/nvidia/lib64 holds the driver's libcuda.
    _lib_dir(env_dirs["torch"] / "lib", "libcuda.so")  # e.g. a stub some wheels carry
    lib = _lib_dir(tmp_path / "usr-local-nvidia" / "lib64", "libcuda.so", "libcuda.so.1", "libcuda.so.580.159.04")
    facts = healthy_gpu_facts
    facts.environ["LD_LIBRARY_PATH"] = str(lib)
    facts.loaded_libraries = [str(lib / "libcuda.so.580.159.04")]
    result = check_ld_library_path(facts)
    assert result.status == OK, result


def test_environment_own_libraries_are_fine(env_dirs, healthy_gpu_facts):
    lib = _lib_dir(env_dirs["prefix"] / "lib", "libcudart.so.11.0", "libcudnn.so.8")
    healthy_gpu_facts.environ["LD_LIBRARY_PATH"] = str(lib)
    assert check_ld_library_path(healthy_gpu_facts).status == OK


# --- source tree -----------------------------------------------------------------------------


def _checkout(root):
    (root / "src").mkdir(parents=True)
    (root / "setup.py").write_text("")
    return make_package(root / "src", "detectron2")


def test_source_checkout_without_built_ext(tmp_path, healthy_gpu_facts):
    pkg = _checkout(tmp_path / "detectron2-src")
    facts = healthy_gpu_facts
    facts.detectron2_path = str(pkg)
    facts.ext = ExtInfo(path=None, loaded=False, error="No module named 'detectron2._C'")
    result = check_source_tree(facts)
    assert result.status == FAIL and "no built _C" in result.summary
    assert "python setup.py build_ext --inplace" in result.fix[0]


def test_source_checkout_with_stale_ext(tmp_path, healthy_gpu_facts):
    pkg = _checkout(tmp_path / "co")
    so = pkg / "_C.so"
    so.write_bytes(b"")
    csrc = pkg / "csrc"
    csrc.mkdir()
    (csrc / "op.cpp").write_text("")
    os.utime(so, (1000, 1000))
    facts = healthy_gpu_facts
    facts.detectron2_path, facts.ext.path = str(pkg), str(so)
    assert check_source_tree(facts).status == WARN
    os.utime(so, None)
    os.utime(csrc / "op.cpp", (1000, 1000))
    facts = healthy_gpu_facts
    del facts.source_root
    assert check_source_tree(facts).status == OK


def test_cwd_shadows_installed_detectron2(env_dirs, healthy_gpu_facts):
    make_package(env_dirs["cwd"], "detectron2")
    facts = healthy_gpu_facts
    facts.sys_path = [""] + facts.sys_path
    result = check_source_tree(facts)
    assert result.status == FAIL and "shadows" in result.summary


# --- toolchain -------------------------------------------------------------------------------


def _script(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _toolkit(tmp_path, release):
    home = tmp_path / f"cuda-{release}"
    _script(home / "bin" / "nvcc", f"echo 'Cuda compilation tools, release {release}, V{release}.89'\n")
    return home


@pytest.mark.parametrize("release, gcc, status", [("11.7", "11.4.0", OK), ("11.7", "12.2.0", FAIL), ("12.1", "11.4.0", FAIL)])
def test_nvcc_and_host_compiler(tmp_path, healthy_gpu_facts, release, gcc, status):
    home = _toolkit(tmp_path, release)
    cc = _script(tmp_path / "bin" / "gcc-test", f"echo 'gcc (Debian {gcc}-1) {gcc}'\n")
    facts = healthy_gpu_facts
    facts.environ.update(CUDA_HOME=str(home), CC=str(cc))
    del facts.toolchain
    result = check_host_compiler(facts)
    assert result.status == status, result.summary
    if release == "11.7" and status == FAIL:
        assert "GCC <= 11" in result.summary and "g++-11" in result.fix[0]


def test_cuda_home_without_nvcc(tmp_path, healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.environ["CUDA_HOME"] = str(tmp_path)
    del facts.toolchain
    assert check_host_compiler(facts).status == FAIL


def test_toolchain_not_probed_without_cuda_home(healthy_gpu_facts):
    del healthy_gpu_facts.toolchain
    assert healthy_gpu_facts.toolchain == Toolchain(cuda_home=None)
    assert check_host_compiler(healthy_gpu_facts).status == SKIP


def test_clang_host_compiler_is_not_judged(tmp_path, healthy_gpu_facts):
    home = _toolkit(tmp_path, "11.7")
    cc = _script(tmp_path / "bin" / "clang-test", "echo 'Debian clang version 14.0.6'\n")
    facts = healthy_gpu_facts
    facts.environ.update(CUDA_HOME=str(home), CC=str(cc))
    del facts.toolchain
    result = check_host_compiler(facts)
    assert result.status == OK and "only GCC is checked" in result.summary



# --- variant choice for fixes ------------------------------------------------------------------


def test_best_variant_follows_driver_and_gpu(healthy_gpu_facts):
    # The same table as conda's solver (detectron2.utils.variants.choose_variant).
    from detectron2.doctor.fixes import best_variant

    facts = healthy_gpu_facts
    assert best_variant(facts).name == "cu117"  # A100, driver 535 (CUDA 12.2): the anchor
    facts.driver.version, facts.driver.cuda_version = "470.57.02", None  # CUDA 11.4: no package fits
    assert best_variant(facts).name == "cpu"
    facts.driver.version = "515.65.01"  # CUDA 11.7
    assert best_variant(facts).name == "cu117"
    facts.driver.version = "440.33.01"  # too old for any CUDA 11 build
    assert best_variant(facts).name == "cpu"
    facts.driver.version, facts.driver.cuda_version = "535.104.05", "12.2"
    facts.driver.gpus = [H100]  # the anchor's pytorch has no sm_90: cu118
    assert best_variant(facts).name == "cu118"
    facts.driver.gpus = [T4]
    assert best_variant(facts).name == "cu118"
    facts.driver.gpus = [GPU(0, "NVIDIA B200", (10, 0))]  # only conda-forge's stack has Blackwell
    assert best_variant(facts).name == "cu129"
    assert best_variant(healthy_gpu_facts, want_cuda=False).name == "cpu"


def test_conda_lines_for_both_stacks():
    from detectron2.doctor.fixes import conda_line
    from detectron2.utils.variants import Variant

    pytorch_stack = Variant("cu117", "2.0.1", "0.15.2", "11.7", "8.5", "8.0;8.6+PTX", ("3.11",),
                            ("pytorch", "nvidia", "conda-forge"), "515.43.04")
    assert conda_line(pytorch_stack, "0.7.0") == ("conda install -c detectron2-neo -c pytorch -c nvidia -c conda-forge "
                                                  "'detectron2=0.7.0=cu117*' pytorch=2.0.1 torchvision=0.15.2 pytorch-cuda=11.7")
    forge = Variant("cu129", "2.12", "0.27", "12.9", "9", "9.0+PTX", ("3.12",), ("conda-forge",), "575.51.03")
    assert conda_line(forge, "0.7.0", tool="mamba") == ("mamba install -c detectron2-neo -c conda-forge "
                                                        "'detectron2=0.7.0=cu129*' 'pytorch=2.12=cuda*' torchvision=0.27 "
                                                        "cuda-version=12.9")
    cpu = Variant("cpu", "2.0.1", "0.15.2", None, None, None, ("3.11",), ("pytorch", "nvidia", "conda-forge"), None)
    assert conda_line(cpu, "0.7.0").endswith("'detectron2=0.7.0=cpu*' pytorch=2.0.1 torchvision=0.15.2 cpuonly")


def test_system_python_prefix_does_not_swallow_usr_local(tmp_path, healthy_gpu_facts):
    facts = healthy_gpu_facts
    facts.prefix = str(tmp_path / "usr")
    lib = _lib_dir(tmp_path / "usr" / "local" / "cuda-11.0" / "lib64", "libcudart.so.11.0")
    facts.environ["LD_LIBRARY_PATH"] = str(lib)
    assert check_ld_library_path(facts).status == WARN

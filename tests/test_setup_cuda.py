"""setup.py's CUDA decisions: where the CUDA library headers of the installed torch are
looked for (pip's nvidia-* packages, a conda env), and the one line a build prints or
fails with when CUDA cannot be compiled."""
import os
import runpy
import sys
import types
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def setup_py(monkeypatch):
    """setup.py's functions, loaded without building anything."""
    monkeypatch.setenv("FORCE_CUDA", "0")
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: None)
    monkeypatch.chdir(ROOT)
    # the functions' own globals (run_path returns a copy), so that tests can replace names
    return runpy.run_path(str(ROOT / "setup.py"))["_cuda_problem"].__globals__


def _headers(folder: Path, names=("cusparse.h", "cublas_v2.h", "cusolverDn.h")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text("")
    return folder


def test_pip_nvidia_and_conda_include_folders_are_found(setup_py, tmp_path, monkeypatch):
    site = tmp_path / "site-packages" / "nvidia"
    cu13 = _headers(site / "cu13" / "include")
    cudnn = _headers(site / "cudnn" / "include", ["cudnn.h"])
    (site / "nccl").mkdir()  # no include folder: skipped
    monkeypatch.setitem(sys.modules, "nvidia", types.SimpleNamespace(__path__=[str(site)]))
    conda = tmp_path / "env"
    targets = _headers(conda / "targets" / "x86_64-linux" / "include")
    _headers(conda / "include")
    monkeypatch.setenv("CONDA_PREFIX", str(conda))
    monkeypatch.delenv("PREFIX", raising=False)
    found = setup_py["_cuda_library_include_dirs"]()
    assert found[:2] == [str(cu13), str(cudnn)]
    assert str(targets) in found and str(conda / "include") in found


def _fake_toolkit(setup_py, tmp_path, release="13.0", torch_cuda="13.0", headers=False):
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}, V{release}.1'\n")
    nvcc.chmod(0o755)
    (home / "include").mkdir()
    if headers:
        _headers(home / "include")
    setup_py["cpp_extension"] = types.SimpleNamespace(CUDA_HOME=str(home))
    setup_py["torch"] = types.SimpleNamespace(
        __version__="2.14.1", version=types.SimpleNamespace(cuda=torch_cuda),
        cuda=types.SimpleNamespace(is_available=lambda: False))
    setup_py["_cuda_library_include_dirs"] = lambda: []
    return home


def test_missing_library_headers_fail_force_cuda_in_one_line(setup_py, tmp_path, monkeypatch):
    _fake_toolkit(setup_py, tmp_path)
    problem = setup_py["_cuda_problem"]()
    assert "cusparse.h" in problem and "cuda-libraries-dev" in problem
    monkeypatch.setenv("FORCE_CUDA", "1")
    with pytest.raises(SystemExit) as e:
        setup_py["_want_cuda"]()
    assert "FORCE_CUDA=0" in str(e.value.code) and "cusparse.h" in str(e.value.code)
    assert "\n" not in str(e.value.code)


def test_auto_mode_falls_back_to_cpu_saying_why(setup_py, tmp_path, monkeypatch, capsys):
    _fake_toolkit(setup_py, tmp_path)
    monkeypatch.delenv("FORCE_CUDA")
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")
    assert setup_py["_want_cuda"]() is False
    err = capsys.readouterr().err.strip()
    assert err.startswith("detectron2: building the CPU ops only") and "cusparse.h" in err and "\n" not in err


def test_headers_in_the_toolkit_or_beside_torch_make_cuda_buildable(setup_py, tmp_path, monkeypatch):
    _fake_toolkit(setup_py, tmp_path, headers=True)
    assert setup_py["_cuda_problem"]() is None
    _fake_toolkit(setup_py, tmp_path / "bare")
    pip_headers = _headers(tmp_path / "nvidia" / "cu13" / "include")
    setup_py["_cuda_library_include_dirs"] = lambda: [str(pip_headers)]
    assert setup_py["_cuda_problem"]() is None
    monkeypatch.setenv("FORCE_CUDA", "1")
    assert setup_py["_want_cuda"]() is True


def test_nvcc_of_another_cuda_major_and_cpu_torch_are_named(setup_py, tmp_path):
    _fake_toolkit(setup_py, tmp_path, release="12.4", headers=True)
    assert "CUDA 12.4" in setup_py["_cuda_problem"]() and "13.0" in setup_py["_cuda_problem"]()
    _fake_toolkit(setup_py, tmp_path / "cpu", torch_cuda=None)
    assert "CPU-only" in setup_py["_cuda_problem"]()


def test_the_installed_torch_headers_are_found_here(setup_py):
    """On a machine whose pip torch has CUDA, its nvidia-* headers are on the list."""
    import torch

    if torch.version.cuda is None:
        pytest.skip("CPU-only torch: no CUDA library headers to find")
    found = setup_py["_cuda_library_include_dirs"]()
    assert any(os.path.isfile(os.path.join(d, "cusparse.h")) for d in found) or \
        any(os.path.isfile(os.path.join(d, "cusparse.h")) for d in setup_py["_toolkit_include_dirs"]()), found


@pytest.mark.parametrize("debug", ["", "1"])
def test_release_and_debug_compile_flags(setup_py, monkeypatch, debug):
    monkeypatch.setenv("DEBUG", debug)
    setup_py["_want_cuda"] = lambda: True
    made = {}
    monkeypatch.setattr(setup_py["cpp_extension"], "CUDAExtension", lambda name, **kw: made.setdefault("cuda", kw))
    setup_py["_extension"]()
    args = made["cuda"]
    nvcc, cxx, link = args["extra_compile_args"]["nvcc"], args["extra_compile_args"]["cxx"], args["extra_link_args"]
    # PTX is compressed too (nvcc compresses only SASS by default): half the size of _C.
    assert "-Xfatbin=-compress-all" in nvcc and "-O3" in nvcc
    if debug:
        assert "-lineinfo" in nvcc and "-g" in cxx and "-s" not in link
    else:
        assert "-lineinfo" not in nvcc and "-g0" in cxx and link == ["-s"]

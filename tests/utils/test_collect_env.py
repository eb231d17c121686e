"""collect_env: upstream's fields, and no failure when _C, the GPU or nvidia-smi is missing."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import torch

from detectron2.utils import collect_env
from detectron2.utils._gpu_probe import GPU, DriverInfo

SRC = str(Path(__file__).resolve().parents[2] / "src")
FIELDS = ["sys.platform", "Python", "numpy", "detectron2", "detectron2._C", "PyTorch", "PyTorch debug build",
          "torch._C._GLIBCXX_USE_CXX11_ABI", "GPU available", "CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "Pillow",
          "torchvision", "fvcore", "iopath", "cv2"]


def test_fields_present():
    rows = dict(collect_env.collect_rows())
    for name in FIELDS:
        assert name in rows, name
    assert rows["PyTorch"].startswith(torch.__version__)
    text = collect_env.collect_env_info()
    lines = text.splitlines()
    assert all(any(line.startswith(name + "  ") for line in lines) for name in FIELDS)
    assert "PyTorch built with" in text  # torch.__config__.show()


def test_extension_rows_when_built():
    rows = dict(collect_env._detectron2_rows())
    try:
        import detectron2._C as C
    except ImportError:
        assert rows["detectron2._C"].startswith("not built or failed to import")
        return
    assert rows["Compiler"] == C.get_compiler_version()
    if C.has_cuda():
        assert rows["CUDA compiler"] == C.get_cuda_version()
        assert "detectron2 arch flags" in rows


def test_broken_extension_is_a_row_not_an_error(monkeypatch):
    real = importlib.import_module

    def failing(name, *args):
        if name == "detectron2._C":
            raise ImportError("/x/_C.so: undefined symbol: _ZN3c104fakeEv")
        return real(name, *args)

    monkeypatch.setattr(collect_env.importlib, "import_module", failing)
    rows = dict(collect_env.collect_rows())
    assert "undefined symbol" in rows["detectron2._C"]
    assert "Compiler" not in rows


def test_no_driver_means_no_gpu(monkeypatch):
    monkeypatch.setattr(collect_env, "probe_driver", lambda: DriverInfo(present=False))
    rows = dict(collect_env._gpu_rows(torch))
    assert rows == {"GPU available": "No: no NVIDIA driver on this machine"}


def test_gpus_listed_from_the_driver(monkeypatch):
    info = DriverInfo(present=True, version="535.104.05", cuda_version="12.2",
                      gpus=[GPU(0, "NVIDIA H100 80GB HBM3", (9, 0)), GPU(1, "NVIDIA H100 80GB HBM3", (9, 0))])
    monkeypatch.setattr(collect_env, "probe_driver", lambda: info)
    rows = dict(collect_env._gpu_rows(None))  # works even without torch
    assert rows["GPU 0"] == "NVIDIA H100 80GB HBM3 (arch=9.0)" and "GPU 1" in rows
    assert rows["Driver version"] == "535.104.05" and rows["Driver CUDA version"] == "12.2"
    assert rows["GPU available"].startswith("No")


def test_module_runs_as_a_script_without_nvidia_smi(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC, PATH=os.path.dirname(sys.executable))  # no nvidia-smi on PATH
    done = subprocess.run([sys.executable, "-m", "detectron2.utils.collect_env"], capture_output=True, text=True,
                          env=env, timeout=120, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "detectron2._C" in done.stdout and "PyTorch" in done.stdout

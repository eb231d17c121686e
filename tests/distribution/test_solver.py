"""Proof with a real solver: py-rattler over the channel model plus our recipe's packages.

Virtual packages stand for the machine: __cuda is the driver's CUDA version (absent
without a GPU). Each solve runs in a child process (see solve_helper.py).
"""
import json
import os
import subprocess
import sys

import pytest
import yaml

import channel_model as M
from channel_model import V

HERE = os.path.dirname(os.path.abspath(__file__))
ENV_CHANNELS = (V.CHANNEL, "pytorch", "nvidia", "conda-forge")


@pytest.fixture(scope="module")
def channels(model_channels):
    return model_channels


def solve(channels, specs, cuda=None, order=ENV_CHANNELS, cuda_arch=None):
    request = {"channels": [channels[c] for c in order], "specs": list(specs), "cuda": cuda, "cuda_arch": cuda_arch}
    out = subprocess.run([sys.executable, os.path.join(HERE, "solve_helper.py"), json.dumps(request)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ok(result):
    assert result["ok"], result.get("error")
    return result["packages"]


def test_channels_are_indexed_by_rattler(channels):
    for name, path in channels.items():
        for subdir in ("linux-64", "noarch"):
            with open(os.path.join(path, subdir, "repodata.json")) as f:
                repodata = json.load(f)
            assert repodata["info"]["subdir"] == subdir
    with open(os.path.join(channels["pytorch"], "linux-64", "repodata.json")) as f:
        builds = {p["build"] for p in json.load(f)["packages"].values() if p["name"] == "pytorch"}
    assert "py3.11_cuda11.7_cudnn8.5.0_0" in builds and "py3.11_cpu_0" in builds


def test_driver_12_2_on_ampere_gives_the_anchor(channels):
    pkgs = _ok(solve(channels, ["detectron2"], cuda="12.2", cuda_arch="8.6"))
    assert pkgs["detectron2"]["build"].startswith("cu117_sm80sm86ptx_py")
    assert pkgs["cuda-arch"]["version"] == "8.6"  # the metapackage matching the GPU
    assert V.CHANNEL in pkgs["detectron2"]["channel"]
    assert "cuda11.7" in pkgs["pytorch"]["build"] and pkgs["pytorch"]["version"] == "2.0.1"
    assert pkgs["pytorch-cuda"]["version"] == "11.7"
    assert pkgs["pytorch-mutex"]["build"] == "cuda"
    assert pkgs["torchvision"]["build"].endswith("_cu117")
    # exactly one CUDA runtime: the cuda-* packages of pytorch-cuda, no cudatoolkit
    assert pkgs["cuda-cudart"]["version"].startswith("11.7.") and "cudatoolkit" not in pkgs


def test_without_cuda_arch_the_anchor_needs_asking_for(channels):
    # An older client (no __cuda_arch) never gets the gated build; asked for, it gets the other.
    pkgs = _ok(solve(channels, ["detectron2"], cuda="12.2"))
    assert pkgs["detectron2"]["build"].startswith("cu118_")
    pkgs = _ok(solve(channels, ["detectron2 * cu117*"], cuda="12.2"))
    assert pkgs["detectron2"]["build"].endswith(f"_{V.BUILD_NUMBER + V.get_variant('cu117').priority}")


def test_anchor_refused_on_hopper_and_turing(channels):
    for arch in ("9.0", "7.5"):
        result = solve(channels, ["detectron2 * cu117*"], cuda="12.2", cuda_arch=arch)
        assert not result["ok"] and "__cuda_arch" in result["error"], arch


def test_pytorch_channel_variants_keep_mkl_below_2024_1(channels):
    for variant in ("cu117", "cpu"):
        pkgs = _ok(solve(channels, [f"detectron2 * {variant}*"], cuda="12.2" if variant != "cpu" else None))
        assert pkgs["mkl"]["version"] == "2023.1.0", variant
    # the unpinned pytorch alone would take the broken MKL
    pkgs = _ok(solve(channels, ["pytorch 2.0.1 *cpu*"]))
    assert pkgs["mkl"]["version"] == "2024.1.0"


def test_driver_11_4_fails_naming_cuda(channels):
    result = solve(channels, ["detectron2 * cu117*"], cuda="11.4")
    assert not result["ok"] and "__cuda" in result["error"]


def test_no_gpu_gives_only_the_cpu_variant(channels):
    pkgs = _ok(solve(channels, ["detectron2"]))
    assert pkgs["detectron2"]["build"].startswith("cpu_py")
    assert pkgs["pytorch"]["build"].endswith("_cpu_0") and pkgs["pytorch-mutex"]["build"] == "cpu"
    assert "pytorch-cuda" not in pkgs and "cuda-cudart" not in pkgs
    for v in V.VARIANTS:
        if v.is_cuda:
            result = solve(channels, [f"detectron2 * {v.build_prefix}*"])
            assert not result["ok"] and "__cuda" in result["error"], v.name


def test_cuda_build_never_beside_cpu_pytorch(channels):
    for extra in (["cpuonly"], ["pytorch * *cpu*"]):
        result = solve(channels, ["detectron2 * cu117*"] + extra, cuda="12.2")
        assert not result["ok"], extra


def test_cpu_build_never_beside_cuda_pytorch(channels):
    result = solve(channels, ["detectron2 * cpu_*", "pytorch-cuda"], cuda="12.2")
    assert not result["ok"]


def test_cu118_takes_the_cuda_11_8_pytorch(channels):
    pkgs = _ok(solve(channels, ["detectron2 * cu118*"], cuda="12.2"))
    assert "cuda11.8_cudnn8.7.0" in pkgs["pytorch"]["build"] and pkgs["pytorch-cuda"]["version"] == "11.8"


def test_conda_forge_variant_needs_a_driver_of_its_major(channels):
    # conda-forge's convention: cuda-version 12.9 constrains __cuda >=12 (minor-version compatibility)
    order = (V.CHANNEL, "conda-forge")
    result = solve(channels, ["detectron2 * cu129*"], cuda="11.8", order=order)
    assert not result["ok"] and "__cuda" in result["error"]
    pkgs = _ok(solve(channels, ["detectron2 * cu129*"], cuda="12.2", order=order))
    assert pkgs["pytorch"]["build"].startswith("cuda129_") and pkgs["cuda-version"]["version"] == "12.9"
    assert not solve(channels, ["detectron2 * cu130*"], cuda="12.9", order=order)["ok"]


def _env_request(rel):
    with open(os.path.join(M.ROOT, rel)) as f:
        env = yaml.safe_load(f)
    specs = []
    for dep in env["dependencies"]:
        if "::" in dep:
            channel, dep = dep.split("::")
            assert channel == V.CHANNEL
        specs.append(dep)
    order = tuple(c for c in env["channels"] if c != "nodefaults")
    return order, specs


def test_environment_yml_solves(channels):
    order, specs = _env_request("environment.yml")
    pkgs = _ok(solve(channels, specs, cuda="12.2", order=order))
    assert pkgs["detectron2"]["build"].startswith("cu117_") and V.CHANNEL in pkgs["detectron2"]["channel"]
    assert "cuda11.7" in pkgs["pytorch"]["build"] and "pytorch" in pkgs["pytorch"]["channel"]
    assert pkgs["torchvision"]["version"] == "0.15.2"


@pytest.mark.parametrize("variant", [v for v in V.VARIANTS if v.name != V.DEFAULT_VARIANT], ids=lambda v: v.name)
def test_variant_env_files_solve(channels, variant):
    order, specs = _env_request(f"envs/{variant.name}.yml")
    pkgs = _ok(solve(channels, specs, cuda=variant.cuda, order=order))
    assert pkgs["detectron2"]["build"].startswith(variant.build_prefix + "_")
    assert pkgs["python"]["version"].startswith(variant.pythons[-1] + ".")


def test_strict_priority_keeps_conda_forges_older_detectron2_out(channels):
    pkgs = _ok(solve(channels, ["detectron2", "python 3.11.*"]))
    assert pkgs["detectron2"]["version"] == V.PACKAGE_VERSION and V.CHANNEL in pkgs["detectron2"]["channel"]


@pytest.mark.parametrize("variant", V.VARIANTS, ids=lambda v: v.name)
def test_doctors_install_line_solves_to_that_variant(channels, variant):
    from detectron2.doctor.fixes import conda_specs

    order = (V.CHANNEL,) + variant.channels
    pkgs = _ok(solve(channels, conda_specs(variant, V.PACKAGE_VERSION), cuda=variant.cuda, order=order))
    assert pkgs["detectron2"]["build"].startswith(variant.build_prefix + "_")

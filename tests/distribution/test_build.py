"""scripts/build_variant.py: package metadata from meta.yaml, channel writes, arch checks,
and (slow) a real end-to-end build of the CPU variant into a local channel."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

import channel_model as M
from channel_model import V

sys.path.insert(0, os.path.join(M.ROOT, "scripts"))
import build_variant as B  # noqa: E402
import distro  # noqa: E402


@pytest.mark.parametrize("variant", V.VARIANTS, ids=lambda v: v.name)
def test_package_depends_are_what_meta_yaml_declares(variant):
    py = variant.pythons[-1]
    built = {"python": py, "torch": variant.pytorch, "torchvision": variant.torchvision, "torch_cuda": variant.cuda}
    index, notes = B.package_metadata(variant, py, built)
    depends, constrains = distro.run_requirements(variant.name, py)
    assert notes == []
    assert index["depends"] == depends and index["constrains"] == constrains
    meta = distro.rendered_for(variant.name, py)
    assert index["build"] == meta["build"]["string"] and index["build_number"] == meta["build"]["number"]
    assert index["subdir"] == "linux-64"


def test_a_foreign_torch_is_named_in_the_pins():
    v = V.get_variant("cpu")
    built = {"python": "3.11", "torch": "2.14.1", "torchvision": "0.29.1", "torch_cuda": None}
    index, notes = B.package_metadata(v, "3.11", built)
    assert notes and "2.14.1" in notes[0]
    assert "pytorch 2.14.* *cpu*" in index["depends"] and "torchvision 0.29.*" in index["depends"]
    declared, _ = distro.run_requirements("cpu", "3.11")
    others = [d for d in declared if d.split()[0] not in ("pytorch", "torchvision")]
    assert [d for d in index["depends"] if d.split()[0] not in ("pytorch", "torchvision")] == others


def test_publish_keeps_existing_packages(tmp_path):
    channel = tmp_path / "channel"
    old = M.Pkg(V.CHANNEL, "detectron2", "0.7.0", "cpu_py310h0000000_0", depends=("python >=3.10,<3.11.0a0",))
    M.write_package(old, str(channel))
    new = M.write_package(old._replace(build="cpu_py311h0000000_0"), str(tmp_path / "staging"))
    B.publish(new, str(channel))
    with open(channel / "linux-64" / "repodata.json") as f:
        names = set(json.load(f)["packages"])
    assert names == {"detectron2-0.7.0-cpu_py310h0000000_0.tar.bz2", "detectron2-0.7.0-cpu_py311h0000000_0.tar.bz2"}
    assert sorted(os.listdir(tmp_path)) == ["channel", "staging"]  # no staging or backup dirs left


def test_parse_cuobjdump():
    text = """
ELF file    1: _C.1.sm_80.cubin
ELF file    2: _C.2.sm_86.cubin
PTX file    1: _C.1.sm_86.ptx
"""
    sass, ptx = B.parse_cuobjdump(text)
    assert sass == {"sm_80", "sm_86"} and ptx == {"compute_86"}
    v = V.get_variant("cu117")
    assert set(v.sass_archs) <= sass and set(v.ptx_archs) <= ptx
    v118 = V.get_variant("cu118")
    assert not set(v118.sass_archs) <= sass  # sm_89/sm_90 missing would fail the build
    assert B.uncovered_capabilities(v, sass, ptx) == []  # cu117 declares 8.0-8.9: covered
    assert "7.0" in B.uncovered_capabilities(v118, sass, ptx)  # cu118 declares Volta: sm_80 cannot run it


def test_build_env_for_legacy_cuda_avoids_local_cuda13(monkeypatch):
    monkeypatch.delenv("D2_CUDA_HOME", raising=False)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    env = B.build_env(V.get_variant("cu117"))
    assert env["CUDA_HOME"] == "/usr" and env["PATH"].startswith("/usr/bin" + os.pathsep)
    assert env["CC"] == "gcc-11" and env["CXX"] == "g++-11" and env["TORCH_CUDA_ARCH_LIST"] == "8.0;8.6+PTX"


def _tree_has_ops() -> bool:
    ops = os.path.join(M.ROOT, "src", "detectron2", "csrc", "ops")
    return os.path.isdir(ops) and bool(os.listdir(ops))


@pytest.mark.slow
def test_build_cpu_variant_end_to_end(tmp_path):
    channel = tmp_path / "channel"
    cmd = [sys.executable, os.path.join(M.ROOT, "scripts", "build_variant.py"), "cpu", "--out", str(channel)]
    if not _tree_has_ops():
        cmd.append("--allow-missing-ops")  # strict as soon as the ops are in the tree
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "self-test passed" in out.stdout and "import ok" in out.stdout
    (pkg,) = [p for p in os.listdir(channel / "linux-64") if p.endswith(".conda")]
    py = "%d.%d" % sys.version_info[:2]
    assert pkg.startswith(f"detectron2-{V.PACKAGE_VERSION}-cpu_py{py.replace('.', '')}h")
    with zipfile.ZipFile(channel / "linux-64" / pkg) as z:
        names = z.namelist()
    assert any(n.startswith("info-") for n in names) and any(n.startswith("pkg-") for n in names)
    from conda_package_handling import api as cph

    cph.extract(str(channel / "linux-64" / pkg), dest_dir=str(tmp_path / "info"), components="info")
    with open(tmp_path / "info" / "info" / "index.json") as f:
        index = json.load(f)
    declared, constrains = distro.run_requirements("cpu", py)
    import torch

    version = torch.__version__.split("+")[0]
    expected = declared
    if version != V.get_variant("cpu").pytorch:  # built against the torch here: the pin names it
        torch_mm = ".".join(version.split(".")[:2])
        expected = [d if d.split()[0] != "pytorch" else f"pytorch {torch_mm}.* *cpu*" for d in declared]
    import numpy

    if not B._satisfies(numpy.__version__, next(d for d in declared if d.split()[0] == "numpy")):
        major = int(numpy.__version__.split(".")[0])  # the numpy it was built and tested with
        expected = [f"numpy >={major},<{major + 1}" if d.split()[0] == "numpy" else d for d in expected]
    assert [d for d in index["depends"] if not d.startswith("torchvision")] == \
        [d for d in expected if not d.startswith("torchvision")]
    assert index["constrains"] == constrains
    # the indexer's record (it writes specs in its own normal form, e.g. "==1.0")
    with open(channel / "linux-64" / "repodata.json") as f:
        record = json.load(f)["packages.conda"][pkg]
    assert [d.split()[0] for d in record["depends"]] == [d.split()[0] for d in index["depends"]]
    assert record["build"] == index["build"]


def test_mirror_sorts_packages_by_their_subdir(tmp_path):
    import mirror_channel

    cache = tmp_path / "pkgs"
    for pkg in M.pytorch_channel()[:3] + M.detectron2_records()[:1]:
        path = M.write_package(pkg, str(tmp_path / "src"))
        os.makedirs(cache, exist_ok=True)
        os.rename(path, cache / os.path.basename(path))  # a package cache is flat
    assert mirror_channel.mirror([str(cache)], str(tmp_path / "mirror")) == 4
    with open(tmp_path / "mirror" / "noarch" / "repodata.json") as f:
        noarch = {p["name"] for p in json.load(f)["packages"].values()}
    with open(tmp_path / "mirror" / "linux-64" / "repodata.json") as f:
        linux = {p["name"] for p in json.load(f)["packages"].values()}
    assert noarch == {"pytorch-mutex", "cpuonly"} and linux == {"detectron2"}
    with pytest.raises(SystemExit, match="neither a directory"):
        mirror_channel.package_files([str(tmp_path / "nothing.txt")])

"""scripts/build_variant.py, what a user of the built package meets: the .conda carries
bin/ launchers for the console scripts (a non-noarch package gets none from link.json),
depends on the numpy it was built with, the channel folder follows the umask, and a
failed compile shows the compiler's error and the log path."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import channel_model as M
from channel_model import V

sys.path.insert(0, os.path.join(M.ROOT, "scripts"))
import build_variant as B  # noqa: E402


def _toy_wheel(tmp_path) -> str:
    """A binary-tagged wheel with two console scripts, like detectron2's."""
    src = tmp_path / "toy"
    (src / "src" / "toyd2").mkdir(parents=True)
    (src / "src" / "toyd2" / "__init__.py").write_text("import sys\ndef main():\n    print('toy', sys.argv[1:])\n")
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "detectron2"
        version = "0.7.0"
        [project.scripts]
        detectron2-doctor = "toyd2:main"
        detectron2-Demo = "toyd2:main"
        [tool.setuptools]
        package-dir = { "" = "src" }
    """))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(wheels),
                    str(src)], check=True)
    (wheel,) = wheels.iterdir()
    subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--python-tag", "cp311", "--abi-tag", "cp311",
                    "--platform-tag", "manylinux2014_x86_64", str(wheel)], check=True, capture_output=True)
    (wheel,) = wheels.iterdir()
    return str(wheel)


def test_conda_package_has_console_scripts_that_name_the_prefix_python(tmp_path):
    wheel = _toy_wheel(tmp_path)
    v = V.get_variant("cpu")
    index, _ = B.package_metadata(v, "3.11", {"python": "3.11", "torch": v.pytorch, "torchvision": v.torchvision,
                                              "torch_cuda": None})
    index["depends"] = []  # the channel model has no dependencies to install
    package = B.make_conda(wheel, index, str(tmp_path / "work"))
    channel = tmp_path / "channel"
    B.publish(package, str(channel))
    prefix = tmp_path / "prefix"
    B.install(str(channel), index["build"], str(prefix))
    for name in ("detectron2-doctor", "detectron2-Demo"):
        launcher = prefix / "bin" / name
        assert launcher.is_file() and os.access(launcher, os.X_OK), name
        lines = launcher.read_text().splitlines()
        assert lines[0] == f"#!{prefix}/bin/python"  # the placeholder was replaced at install
        site = next(prefix.glob("**/site-packages"))
        out = subprocess.run([sys.executable, str(launcher), "--x"], env=dict(os.environ, PYTHONPATH=str(site)),
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "toy ['--x']"


def test_numpy_pin_follows_the_numpy_it_was_built_with():
    v = V.get_variant("cpu")
    declared, _ = __import__("distro").run_requirements("cpu", "3.11")
    assert "numpy <2" in declared  # the variant's own (pytorch 2.0.1) pin
    built = {"python": "3.11", "torch": "2.14.1", "torchvision": "0.29.1", "torch_cuda": None, "numpy": "2.4.1"}
    index, notes = B.package_metadata(v, "3.11", built)
    assert "numpy >=2,<3" in index["depends"] and "numpy <2" not in index["depends"]
    assert any("numpy 2.4.1" in n for n in notes)
    built["numpy"] = "1.26.4"  # inside the declared range: unchanged
    index, notes = B.package_metadata(v, "3.11", built)
    assert "numpy <2" in index["depends"] and not any("numpy" in n for n in notes)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_channel_folder_follows_the_umask(tmp_path, umask):
    pkg = M.write_package(M.Pkg(V.CHANNEL, "detectron2", "0.7.0", "cpu_py311h0000000_0"), str(tmp_path / "staging"))
    old = os.umask(umask)
    try:
        B.publish(pkg, str(tmp_path / "channel"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "channel").st_mode & 0o777 == 0o777 & ~umask


def test_failed_compile_shows_the_compiler_error_and_the_log_path(tmp_path, capsys):
    script = tmp_path / "fake_build.py"
    script.write_text(textwrap.dedent("""
        import sys
        print("Building wheel for detectron2 (pyproject.toml): started")
        print("[1/3] c++ -c a.cpp -o a.o")
        print("FAILED: /tmp/b.o")
        print("src/b.cpp:12:10: fatal error: cusparse.h: No such file or directory")
        print("   12 | #include <cusparse.h>")
        print("compilation terminated.")
        for i in range(60):
            print(f"  File 'pip/_internal/x.py', line {i}, in wrapper")
        print("error: subprocess-exited-with-error")
        sys.exit(1)
    """))
    log = tmp_path / "build.log"
    with pytest.raises(SystemExit) as e:
        B.run_with_progress([sys.executable, str(script)], dict(os.environ), str(tmp_path), str(log), "building")
    message = str(e.value.code)
    assert "fatal error: cusparse.h: No such file or directory" in message
    assert "#include <cusparse.h>" in message and f"full log: {log}" in message
    assert "wrapper" not in message  # pip's traceback stays in the log
    assert "line 59, in wrapper" in log.read_text()


def test_default_toolchain_is_not_a_machine_path(monkeypatch):
    monkeypatch.delenv("D2_TOOLCHAIN_PYTHON", raising=False)
    with pytest.raises(SystemExit, match="D2_TOOLCHAIN_PYTHON"):
        B.builder_python(V.get_variant("cu117"), None)
    assert B.builder_python(V.get_variant("cpu"), None) == sys.executable


def _python_without_site_packages(tmp_path) -> str:
    """An interpreter that sees only the standard library: every dependency is missing."""
    path = tmp_path / "bare-python"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} -I -S \"$@\"\n")
    path.chmod(0o755)
    return str(path)


def test_missing_run_dependencies_name_pip_specs_with_the_variants_pins(tmp_path):
    bare = _python_without_site_packages(tmp_path)
    missing = B.missing_run_dependencies(V.get_variant("cu117"), bare, "3.11")
    # conda names become pip names and conda version specs pip's.
    for spec in ("torch", "torchvision==0.15.2.*", "numpy<2", "Pillow>=7.1", "fvcore>=0.1.5,<0.1.6",
                 "hydra-core>=1.1", "opencv-python-headless", "matplotlib"):
        assert spec in missing
    # No conda-only or virtual package is asked of pip.
    assert not [s for s in missing if s.startswith(("__", "python", "pytorch", "cuda", "mkl"))]
    # This machine's interpreter has them all (bootstrap installs what the package declares).
    assert B.missing_run_dependencies(V.get_variant("cpu"), sys.executable, "3.11") == []


def test_numpy_pin_goes_along_with_other_missing_packages(tmp_path, monkeypatch):
    # numpy importable, fvcore not: the pip line still pins numpy so that pip keeps it <2.
    monkeypatch.setattr(B, "run", lambda cmd, **kw: "fvcore\n")
    assert B.missing_run_dependencies(V.get_variant("cu117"), sys.executable, "3.11") == [
        "fvcore>=0.1.5,<0.1.6", "numpy<2"]
    monkeypatch.setattr(B, "run", lambda cmd, **kw: "\n")
    assert B.missing_run_dependencies(V.get_variant("cu117"), sys.executable, "3.11") == []


def test_build_stops_before_compiling_when_the_toolchain_lacks_run_dependencies(tmp_path, monkeypatch, capsys):
    bare = _python_without_site_packages(tmp_path)
    v = V.get_variant("cpu")
    monkeypatch.setattr(B, "probe", lambda python: {"python": "3.11", "torch": v.pytorch, "torchvision": None,
                                                    "torch_cuda": None, "numpy": "2.0"})
    monkeypatch.setattr(B, "build_wheel", lambda *a, **k: pytest.fail("compiled although dependencies are missing"))
    with pytest.raises(SystemExit) as err:
        B.main(["cpu", "--toolchain-python", bare, "--python", "3.11", "--out", str(tmp_path / "ch")])
    message = str(err.value)
    assert "lacks what the package needs at run time" in message
    assert f"{bare} -m pip install" in message and '"fvcore>=0.1.5,<0.1.6"' in message

"""The package's build front door: setup.py without torch, and no pkg_resources anywhere
(setuptools >= 81 removed it; upstream's model_zoo broke on that)."""
import ast
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_setup_without_torch_says_what_to_install(tmp_path):
    # A `torch` that cannot be imported, first on the path: what a user without torch sees.
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    done = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "needs PyTorch installed first" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_nothing_imports_pkg_resources():
    offenders = []
    for path in [ROOT / "setup.py", *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "scripts").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "pkg_resources" for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_sources_parse_as_python_3_8():
    # No 3.8 interpreter can be installed here; the grammar check catches match statements,
    # parenthesised context managers, `except*` and the like.
    bad = []
    for path in [ROOT / "setup.py", *sorted((ROOT / "src").rglob("*.py"))]:
        try:
            ast.parse(path.read_text(), str(path), feature_version=(3, 8))
        except SyntaxError as e:
            bad.append(f"{path.relative_to(ROOT)}:{e.lineno}: {e.msg}")
    assert not bad, bad


@pytest.mark.slow
def test_editable_install_builds_and_imports(tmp_path):
    """`pip install --no-build-isolation -e .` (C++-only build) in a fresh venv that sees
    this machine's torch: detectron2 and its _C import from the checkout."""
    checkout = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, checkout / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # --system-site-packages sees the base interpreter's packages only; when this test runs
    # inside a venv (the H100 image's torch lives in one), hand the new venv our sys.path.
    venv_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    parents = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    pathlib.Path(venv_site, "_outer_site_packages.pth").write_text("\n".join(parents) + "\n")
    env = dict(os.environ, FORCE_CUDA="0", MAX_JOBS="2")
    env.pop("PYTHONPATH", None)
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "-e", str(checkout)],
                             capture_output=True, text=True, env=env, timeout=1500)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    probe = "import torch, detectron2, detectron2._C as C; print(detectron2.__file__); print(C.has_cuda())"
    done = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    path, has_cuda = done.stdout.split()
    assert path.startswith(str(checkout / "src" / "detectron2")) and has_cuda == "False"

"""`import detectron2._C` works on its own in a fresh interpreter, as upstream's does
(the extension links against torch's libraries, which only `import torch` loads)."""
import os
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"


def _fresh(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/", timeout=300)


def _has_built_extension() -> bool:
    return any((SRC / "detectron2").glob("_C*.so"))


pytestmark = pytest.mark.skipif(not _has_built_extension(), reason="needs the built detectron2._C in src/")


@pytest.mark.parametrize(
    "statement",
    ["import detectron2._C as C", "from detectron2 import _C as C"],
)
def test_C_imports_without_torch_first(statement):
    code = (
        "import sys\n"
        "assert 'torch' not in sys.modules\n"
        f"{statement}\n"
        "import torch\n"
        "print(C.get_compiler_version(), C.has_cuda(), hasattr(torch.ops.detectron2, 'nms_rotated'))\n"
    )
    done = _fresh(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "True"  # the torch operators are registered


def test_import_detectron2_stays_light():
    done = _fresh("import sys, detectron2; print('torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"

"""Shared helpers of the doctor tests (importable: pytest puts this directory on sys.path)."""
from pathlib import Path

from detectron2.utils._gpu_probe import GPU

A100 = GPU(0, "NVIDIA A100-SXM4-40GB", (8, 0))
H100 = GPU(0, "NVIDIA H100 80GB HBM3", (9, 0))
T4 = GPU(0, "Tesla T4", (7, 5))
P100 = GPU(0, "Tesla P100-PCIE-16GB", (6, 0))

DATA = Path(__file__).parent / "data"


def make_package(root: Path, name: str) -> Path:
    pkg = root / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    return pkg


def make_conda(prefix: Path, *packages: str) -> None:
    """Mark `prefix` as a conda environment holding these 'name-version-build' packages."""
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    for package in packages:
        (meta / f"{package}.json").write_text("{}")

"""The build variants of the conda distribution: the one source of truth for versions.

The recipe (recipe/meta.yaml + conda_build_config.yaml), the environment files
(environment.yml, envs/*.yml), pyproject.toml and the doctor's runtime checks all state
versions; tests/distribution checks each of them against this table.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

# The channel our packages are published to (`conda install -c <CHANNEL> detectron2`).
CHANNEL = "detectron2-neo"
PACKAGE_VERSION = "0.7.0"
# Base build number of the recipe; each variant adds its `priority` so that a solver
# choosing among variants that all fit the machine prefers the anchor (see Variant.priority).
BUILD_NUMBER = 0


@dataclass(frozen=True)
class Variant:
    name: str  # short tag used in build strings and env file names, e.g. "cu117"
    pytorch: str  # exact pytorch version pinned in host and run
    torchvision: str
    cuda: Optional[str]  # CUDA runtime major.minor; None for CPU variants
    cudnn: Optional[str]  # cuDNN major.minor that the pytorch build carries
    arch_list: Optional[str]  # TORCH_CUDA_ARCH_LIST the ops are compiled for
    pythons: Tuple[str, ...]
    channels: Tuple[str, ...]  # in priority order, highest first
    min_driver: Optional[str]  # lowest Linux driver for this CUDA runtime
    # "pytorch": the pytorch/nvidia channels (pytorch-mutex, pytorch-cuda, cpuonly);
    # "conda-forge": conda-forge's pytorch (flavour in the build string, cuda-version).
    stack: str = "pytorch"
    # Glob on pytorch's build string that selects the flavour (host pin and run pin).
    pytorch_build: str = "*"
    # conda-build's compiler('cuda') package for this CUDA version, None for CPU.
    cuda_compiler: Optional[str] = None
    # gcc major used with that nvcc (nvcc 11.x accepts gcc <= 11).
    gcc: str = "11"
    # Added to BUILD_NUMBER: higher wins when several variants fit (anchor first, CPU last).
    priority: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.cuda is not None

    @property
    def cuda_compiler_version(self) -> str:
        # conda-build compares this string in selectors; "None" is its CPU value.
        return self.cuda if self.cuda else "None"

    @property
    def arch_tag(self) -> str:
        """The arch list as it appears in build strings: "8.0;8.6+PTX" -> "sm80sm86ptx"."""
        if not self.arch_list:
            return ""
        tag = "".join("sm" + a.replace("+PTX", "").replace(".", "") for a in self.arch_list.split(";"))
        return tag + ("ptx" if self.arch_list.endswith("+PTX") else "")

    @property
    def build_prefix(self) -> str:
        """Start of the package's build string, e.g. "cu117_sm80sm86ptx" or "cpu"."""
        return f"{self.name}_{self.arch_tag}" if self.is_cuda else self.name

    @property
    def driver_spec(self) -> Optional[str]:
        # Our ops ship PTX; JIT-compiling it needs a driver at least as new as the nvcc
        # that wrote it, so the bound is the full major.minor, not only the major.
        return f">={self.cuda}" if self.cuda else None

    @property
    def sass_archs(self) -> Tuple[str, ...]:
        """SASS the built _C must contain, as cuobjdump names it: ("sm_80", "sm_86")."""
        if not self.arch_list:
            return ()
        return tuple("sm_" + a.replace("+PTX", "").replace(".", "") for a in self.arch_list.split(";"))

    @property
    def ptx_archs(self) -> Tuple[str, ...]:
        """PTX the built _C must contain: the last arch when the list ends in +PTX."""
        if not self.arch_list or not self.arch_list.endswith("+PTX"):
            return ()
        return ("compute_" + self.arch_list.split(";")[-1].replace("+PTX", "").replace(".", ""),)


# Minimum Linux driver per CUDA toolkit release (NVIDIA's CUDA release notes, table 3).
MIN_LINUX_DRIVER = {
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

_PYTORCH_CHANNELS = ("pytorch", "nvidia", "conda-forge")
_CONDA_FORGE = ("conda-forge",)
_PY_LEGACY = ("3.8", "3.9", "3.10", "3.11")
_PY_TODAY = ("3.10", "3.11", "3.12", "3.13")
# conda-forge's CUDA 12.8+/13 pytorch targets up to Blackwell; CUDA 13 dropped < sm_75.
_ARCH_CF = "7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX"

VARIANTS = (
    # (a) the anchor: pytorch 2.0.1 + pytorch-cuda 11.7, cuDNN 8.5 inside pytorch, Ampere ops.
    Variant("cu117", "2.0.1", "0.15.2", "11.7", "8.5", "8.0;8.6+PTX",
            _PY_LEGACY, _PYTORCH_CHANNELS, MIN_LINUX_DRIVER["11.7"],
            stack="pytorch", pytorch_build="*cuda11.7*", cuda_compiler="nvcc", gcc="11", priority=400),
    # (b) same pytorch, CUDA 11.8: adds Ada and Hopper.
    Variant("cu118", "2.0.1", "0.15.2", "11.8", "8.7", "8.0;8.6;8.9;9.0+PTX",
            _PY_LEGACY, _PYTORCH_CHANNELS, MIN_LINUX_DRIVER["11.8"],
            stack="pytorch", pytorch_build="*cuda11.8*", cuda_compiler="nvcc", gcc="11", priority=300),
    # (c) CPU only (cpuonly + pytorch-mutex cpu).
    Variant("cpu", "2.0.1", "0.15.2", None, None, None,
            _PY_LEGACY, _PYTORCH_CHANNELS, None,
            stack="pytorch", pytorch_build="*cpu*", cuda_compiler=None, gcc="11", priority=0),
    # (d) today's conda-forge stack: pytorch 2.12 with CUDA 12.9 (current pin) and 13.0
    # (migrating), cuDNN 9, Volta dropped, Hopper and Blackwell added.
    Variant("cu129", "2.12", "0.27", "12.9", "9", _ARCH_CF,
            _PY_TODAY, _CONDA_FORGE, MIN_LINUX_DRIVER["12.9"],
            stack="conda-forge", pytorch_build="cuda*", cuda_compiler="cuda-nvcc", gcc="13", priority=200),
    Variant("cu130", "2.12", "0.27", "13.0", "9", _ARCH_CF,
            _PY_TODAY, _CONDA_FORGE, MIN_LINUX_DRIVER["13.0"],
            stack="conda-forge", pytorch_build="cuda*", cuda_compiler="cuda-nvcc", gcc="14", priority=100),
)

DEFAULT_VARIANT = "cu117"

# PyPI names in pyproject.toml whose conda package has another name.
CONDA_NAMES: Dict[str, str] = {"Pillow": "pillow", "matplotlib": "matplotlib-base"}


def get_variant(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    known = ", ".join(v.name for v in VARIANTS)
    raise KeyError(f"unknown build variant {name!r}; known variants: {known}")


def build_string(variant: Variant, python: str, pkg_hash: str = "0000000",
                 build_number: Optional[int] = None) -> str:
    """The build string our recipe produces, e.g. cu117_sm80sm86ptx_py311h1a2b3c4_400."""
    number = BUILD_NUMBER + variant.priority if build_number is None else build_number
    return f"{variant.build_prefix}_py{python.replace('.', '')}h{pkg_hash}_{number}"


# Run requirements of the conda package that pyproject.toml does not state: OpenCV is an
# optional import for pip users, but the conda package ships it (from conda-forge) so that
# the data pipeline's cv2 paths work out of the box.
CONDA_EXTRA_RUN: Tuple[str, ...] = ("py-opencv",)

"""The build variants of the conda distribution: the one source of truth for versions.

The recipe (recipe/meta.yaml + conda_build_config.yaml), the environment files
(environment.yml, envs/*.yml), pyproject.toml and the doctor's runtime checks all state
versions; tests/distribution checks each of them against this table.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

# The channel our packages are published to (`conda install -c <CHANNEL> detectron2`).
CHANNEL = "detectron2-neo"
PACKAGE_VERSION = "0.7.0"


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

    @property
    def is_cuda(self) -> bool:
        return self.cuda is not None


# Minimum Linux driver per CUDA toolkit release (NVIDIA's CUDA release notes, table 3).
MIN_LINUX_DRIVER = {
    "11.7": "515.43.04",
    "11.8": "520.61.05",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

_PYTORCH_CHANNELS = ("pytorch", "nvidia", "conda-forge")
_CONDA_FORGE = ("conda-forge",)

VARIANTS = (
    # (a) the anchor: pytorch 2.0.1 + pytorch-cuda 11.7, cuDNN 8.5 inside pytorch, Ampere ops.
    Variant("cu117", "2.0.1", "0.15.2", "11.7", "8.5", "8.0;8.6+PTX",
            ("3.8", "3.9", "3.10", "3.11"), _PYTORCH_CHANNELS, MIN_LINUX_DRIVER["11.7"]),
    # (b) same pytorch, CUDA 11.8: adds Ada and Hopper.
    Variant("cu118", "2.0.1", "0.15.2", "11.8", "8.7", "8.0;8.6;8.9;9.0+PTX",
            ("3.8", "3.9", "3.10", "3.11"), _PYTORCH_CHANNELS, MIN_LINUX_DRIVER["11.8"]),
    # (c) CPU only (cpuonly + pytorch-mutex cpu).
    Variant("cpu", "2.0.1", "0.15.2", None, None, None,
            ("3.8", "3.9", "3.10", "3.11"), _PYTORCH_CHANNELS, None),
)

DEFAULT_VARIANT = "cu117"


def get_variant(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    known = ", ".join(v.name for v in VARIANTS)
    raise KeyError(f"unknown build variant {name!r}; known variants: {known}")

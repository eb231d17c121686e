"""Checks of the running torch version."""
from packaging import version

__all__ = ["min_torch_version"]


def min_torch_version(min_version: str) -> bool:
    """True when the installed torch is at least ``min_version`` (local tags such as
    ``+cu130`` are ignored); False when torch cannot be imported."""
    try:
        import torch
    except ImportError:
        return False
    installed = version.parse(torch.__version__.split("+")[0])
    return installed >= version.parse(min_version)

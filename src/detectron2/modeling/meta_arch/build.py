"""The meta-architecture registry and build_model."""
import torch
from torch import nn

from detectron2.utils.logger import _log_api_usage
from detectron2.utils.registry import Registry

__all__ = ["META_ARCH_REGISTRY", "build_model"]

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = """
Registry for meta-architectures: whole models, called as ``obj(cfg)``, that take a
list of input dicts and return losses (training) or per-image outputs (inference).
"""


def build_model(cfg) -> nn.Module:
    """Build the model named by ``cfg.MODEL.META_ARCHITECTURE`` and move it to
    ``cfg.MODEL.DEVICE``. Weights are initialized, not loaded: use DetectionCheckpointer."""
    meta_arch = cfg.MODEL.META_ARCHITECTURE
    model = META_ARCH_REGISTRY.get(meta_arch)(cfg)
    model.to(torch.device(cfg.MODEL.DEVICE))
    _log_api_usage("modeling.meta_arch." + meta_arch)
    return model

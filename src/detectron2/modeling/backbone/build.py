from typing import Optional

from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry

from .backbone import Backbone

__all__ = ["BACKBONE_REGISTRY", "build_backbone"]

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Registry for backbones. A registered object is called as ``obj(cfg, input_shape)``
(input_shape: ShapeSpec of the image tensor) and must return a :class:`Backbone`.
"""


def build_backbone(cfg, input_shape: Optional[ShapeSpec] = None) -> Backbone:
    """Build the backbone named by ``cfg.MODEL.BACKBONE.NAME``."""
    if input_shape is None:
        input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    name = cfg.MODEL.BACKBONE.NAME
    backbone = BACKBONE_REGISTRY.get(name)(cfg, input_shape)
    if not isinstance(backbone, Backbone):
        raise TypeError(f"Backbone {name!r} returned {type(backbone).__name__}, expected a Backbone")
    return backbone

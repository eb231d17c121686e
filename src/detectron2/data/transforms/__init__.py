"""Transforms (deterministic) and augmentations (policies that produce transforms)."""
from fvcore.transforms.transform import Transform, TransformList  # order matters

from .transform import *
from .augmentation import *
from .augmentation_impl import *

__all__ = [k for k in globals().keys() if not k.startswith("_")]

from detectron2.utils.env import fixup_module_metadata

fixup_module_metadata(__name__, globals(), __all__)
del fixup_module_metadata

"""Building blocks of detectron2 models: compiled ops and small nn.Modules."""
from .roi_align import ROIAlign, roi_align
from .roi_align_rotated import ROIAlignRotated, roi_align_rotated

__all__ = [k for k in globals().keys() if not k.startswith("_")]

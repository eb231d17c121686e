"""Per-region heads of R-CNN models: box, mask and keypoint branches."""
from .box_head import ROI_BOX_HEAD_REGISTRY, build_box_head, FastRCNNConvFCHead
from .keypoint_head import (
    ROI_KEYPOINT_HEAD_REGISTRY,
    build_keypoint_head,
    BaseKeypointRCNNHead,
    KRCNNConvDeconvUpsampleHead,
)
from .mask_head import ROI_MASK_HEAD_REGISTRY, build_mask_head, BaseMaskRCNNHead, MaskRCNNConvUpsampleHead
from .roi_heads import (
    ROI_HEADS_REGISTRY,
    ROIHeads,
    Res5ROIHeads,
    StandardROIHeads,
    build_roi_heads,
    select_foreground_proposals,
)
from .cascade_rcnn import CascadeROIHeads
from .rotated_fast_rcnn import RROIHeads
from .fast_rcnn import FastRCNNOutputLayers

__all__ = [k for k in globals().keys() if not k.startswith("_")]

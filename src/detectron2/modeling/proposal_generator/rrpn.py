"""Rotated Region Proposal Network: RPN on rotated anchors (x_ctr, y_ctr, w, h, angle)."""
from detectron2.config import configurable
from detectron2.structures import pairwise_iou_rotated

from ..box_regression import Box2BoxTransformRotated
from .build import PROPOSAL_GENERATOR_REGISTRY
from .proposal_utils import find_top_rrpn_proposals
from .rpn import RPN

__all__ = ["RRPN"]


@PROPOSAL_GENERATOR_REGISTRY.register()
class RRPN(RPN):
    """RPN for rotated boxes (Ma et al., "Arbitrary-Oriented Scene Text Detection via
    Rotation Proposals"): anchors are matched by rotated IoU, deltas are decoded with
    Box2BoxTransformRotated and proposals suppressed with rotated NMS
    (find_top_rrpn_proposals). It needs a RotatedAnchorGenerator, whose box_dim of 5
    the RPN head picks up."""

    _pairwise_iou = staticmethod(pairwise_iou_rotated)
    _find_top_proposals = staticmethod(find_top_rrpn_proposals)
    _box2box_transform_class = Box2BoxTransformRotated

    @configurable
    def __init__(self, *args, **kwargs):
        """Same arguments as RPN. ``anchor_boundary_thresh`` must be negative and
        ``box_reg_loss_type`` "smooth_l1": the other choices are for axis-aligned boxes."""
        super().__init__(*args, **kwargs)
        if self.anchor_boundary_thresh >= 0:
            raise ValueError(
                "RRPN: anchor_boundary_thresh (MODEL.RPN.BOUNDARY_THRESH) must be negative, "
                f"got {self.anchor_boundary_thresh}; the legacy boundary filter is for axis-aligned anchors"
            )
        if self.box_reg_loss_type != "smooth_l1":
            raise ValueError(
                f"RRPN: box_reg_loss_type must be 'smooth_l1' for rotated boxes, got {self.box_reg_loss_type!r}"
            )

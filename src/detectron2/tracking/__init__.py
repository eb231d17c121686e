"""Tracking of detected instances across video frames."""
from .base_tracker import TRACKER_HEADS_REGISTRY, BaseTracker, build_tracker_head
from .bbox_iou_tracker import BBoxIOUTracker
from .hungarian_tracker import BaseHungarianTracker
from .iou_weighted_hungarian_bbox_iou_tracker import IOUWeightedHungarianBBoxIOUTracker
from .utils import LARGE_COST_VALUE, create_prediction_pairs
from .vanilla_hungarian_bbox_iou_tracker import VanillaHungarianBBoxIOUTracker

__all__ = [k for k in globals().keys() if not k.startswith("_")]

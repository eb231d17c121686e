"""Hungarian tracking that prefers pairs of higher IoU."""
from typing import Dict, List

import numpy as np

from .base_tracker import TRACKER_HEADS_REGISTRY
from .vanilla_hungarian_bbox_iou_tracker import VanillaHungarianBBoxIOUTracker

__all__ = ["IOUWeightedHungarianBBoxIOUTracker"]


@TRACKER_HEADS_REGISTRY.register()
class IOUWeightedHungarianBBoxIOUTracker(VanillaHungarianBBoxIOUTracker):
    """Cost -IoU for pairs with IoU >= track_iou_threshold: the assignment maximizes
    the summed IoU of the matches."""

    def assign_cost_matrix_values(self, cost_matrix: np.ndarray, bbox_pairs: List[Dict]) -> np.ndarray:
        for pair in bbox_pairs:
            cost_matrix[pair["idx"], pair["prev_idx"]] = -1 * pair["IoU"]
        return cost_matrix

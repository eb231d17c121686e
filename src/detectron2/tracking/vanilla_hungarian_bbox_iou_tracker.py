"""Hungarian tracking where every pair above the IoU threshold costs the same."""
from typing import Dict, List

import numpy as np

from detectron2.structures import Instances, pairwise_iou

from .base_tracker import TRACKER_HEADS_REGISTRY
from .hungarian_tracker import BaseHungarianTracker
from .utils import LARGE_COST_VALUE, create_prediction_pairs

__all__ = ["VanillaHungarianBBoxIOUTracker"]


@TRACKER_HEADS_REGISTRY.register()
class VanillaHungarianBBoxIOUTracker(BaseHungarianTracker):
    """Cost -1 for pairs with IoU >= track_iou_threshold, LARGE_COST_VALUE otherwise:
    the assignment maximizes the number of matches."""

    def build_cost_matrix(self, instances: Instances, prev_instances: Instances) -> np.ndarray:
        cost = np.full((len(instances), len(prev_instances)), LARGE_COST_VALUE, dtype=np.float64)
        if len(instances) == 0 or len(prev_instances) == 0:
            return cost
        iou_all = pairwise_iou(instances.pred_boxes, prev_instances.pred_boxes).cpu().numpy()
        pairs = create_prediction_pairs(instances, prev_instances, iou_all, self._track_iou_threshold)
        return self.assign_cost_matrix_values(cost, pairs)

    def assign_cost_matrix_values(self, cost_matrix: np.ndarray, bbox_pairs: List[Dict]) -> np.ndarray:
        for pair in bbox_pairs:
            cost_matrix[pair["idx"], pair["prev_idx"]] = -1
        return cost_matrix

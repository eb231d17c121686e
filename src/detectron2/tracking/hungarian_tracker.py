"""Tracking by optimal (Hungarian) assignment on a cost matrix."""
import copy
from typing import Any, Dict

import numpy as np
from scipy.optimize import linear_sum_assignment

from detectron2.config import configurable
from detectron2.structures import Instances

from .bbox_iou_tracker import BBoxIOUTracker, _check_instances, _tracker_config
from .utils import LARGE_COST_VALUE

__all__ = ["BaseHungarianTracker"]


class BaseHungarianTracker(BBoxIOUTracker):
    """Matches current and previous instances by the assignment of least total cost;
    subclasses define :meth:`build_cost_matrix`. Pairs of cost LARGE_COST_VALUE are
    never matched."""

    @configurable
    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)

    @classmethod
    def from_config(cls, cfg: Any) -> Dict[str, Any]:
        return _tracker_config(cfg)

    def build_cost_matrix(self, instances: Instances, prev_instances: Instances) -> np.ndarray:
        raise TypeError(f"{type(self).__name__}: BaseHungarianTracker is abstract; use a subclass")

    def update(self, instances: Instances) -> Instances:
        _check_instances(instances)
        instances = self._initialize_extra_fields(instances)
        if self._prev_instances is not None:
            self._reset_fields()
            cost = self.build_cost_matrix(instances, self._prev_instances)
            rows, cols = linear_sum_assignment(cost)
            allowed = cost[rows, cols] < LARGE_COST_VALUE
            instances = self._process_matched_idx(instances, rows[allowed], cols[allowed])
            instances = self._assign_new_id(instances)
            instances = self._merge_untracked_instances(instances)
        self._prev_instances = copy.deepcopy(instances)
        return instances

    def _process_matched_idx(self, instances: Instances, matched_idx: np.ndarray, matched_prev_idx: np.ndarray) -> Instances:
        prev = self._prev_instances
        for i, j in zip(matched_idx.tolist(), matched_prev_idx.tolist()):
            instances.ID[i] = prev.ID[j]
            instances.ID_period[i] = prev.ID_period[j] + 1
            instances.lost_frame_count[i] = 0
            self._matched_idx.add(i)
            self._matched_ID.add(prev.ID[j])
            self._untracked_prev_idx.discard(j)
        return instances

"""Helpers shared by the trackers."""
from typing import Dict, List

import numpy as np

from detectron2.structures import Instances

__all__ = ["create_prediction_pairs", "LARGE_COST_VALUE"]

# Cost of a pair that must not be matched (the Hungarian solver needs finite values).
LARGE_COST_VALUE = 100000


def create_prediction_pairs(
    instances: Instances, prev_instances: Instances, iou_all: np.ndarray, threshold: float = 0.5
) -> List[Dict]:
    """The (current, previous) pairs whose IoU is at least ``threshold``, each a dict with
    idx, prev_idx, prev_id, IoU and prev_period."""
    pairs = []
    rows, cols = np.nonzero(np.asarray(iou_all) >= threshold)
    for i, j in zip(rows.tolist(), cols.tolist()):
        pairs.append(
            {
                "idx": i,
                "prev_idx": j,
                "prev_id": prev_instances.ID[j],
                "IoU": float(iou_all[i, j]),
                "prev_period": prev_instances.ID_period[j],
            }
        )
    return pairs

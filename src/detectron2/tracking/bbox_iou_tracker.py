"""Greedy tracking by box IoU with the previous frame."""
import copy
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.structures import Boxes, Instances, pairwise_iou

from .base_tracker import TRACKER_HEADS_REGISTRY, BaseTracker

__all__ = ["BBoxIOUTracker"]


def _tracker_config(cfg: Any) -> Dict[str, Any]:
    """The arguments shared by the box trackers, from cfg.TRACKER_HEADS."""
    t = cfg.TRACKER_HEADS
    for key in ("VIDEO_HEIGHT", "VIDEO_WIDTH"):
        if key not in t:
            raise KeyError(f"cfg.TRACKER_HEADS.{key} is required to build a tracker")
    return {
        "video_height": t.VIDEO_HEIGHT,
        "video_width": t.VIDEO_WIDTH,
        "max_num_instances": t.get("MAX_NUM_INSTANCES", 200),
        "max_lost_frame_count": t.get("MAX_LOST_FRAME_COUNT", 0),
        "min_box_rel_dim": t.get("MIN_BOX_REL_DIM", 0.02),
        "min_instance_period": t.get("MIN_INSTANCE_PERIOD", 1),
        "track_iou_threshold": t.get("TRACK_IOU_THRESHOLD", 0.5),
    }


@TRACKER_HEADS_REGISTRY.register()
class BBoxIOUTracker(BaseTracker):
    """Matches each instance to the previous frame's instance of highest box IoU,
    greedily by decreasing IoU; instances left unmatched get new IDs. Previous instances
    left unmatched are carried over (with ``lost_frame_count`` + 1) for up to
    ``max_lost_frame_count`` frames, so a briefly missed object keeps its ID."""

    @configurable
    def __init__(
        self,
        *,
        video_height: int,
        video_width: int,
        max_num_instances: int = 200,
        max_lost_frame_count: int = 0,
        min_box_rel_dim: float = 0.02,
        min_instance_period: int = 1,
        track_iou_threshold: float = 0.5,
        **kwargs: Any,
    ):
        """
        Args:
            video_height, video_width: the frame size.
            max_num_instances: the most instances tracked at once.
            max_lost_frame_count: how many frames an unmatched instance is carried over.
            min_box_rel_dim: carried-over boxes smaller than this fraction of the frame
                (width or height) are dropped.
            min_instance_period: only instances tracked for more than this many
                frames are carried over when lost.
            track_iou_threshold: the lowest IoU of a match.
        """
        super().__init__(**kwargs)
        if video_height <= 0 or video_width <= 0:
            raise ValueError(f"video_height and video_width must be positive, got {video_height}x{video_width}")
        self._video_height = video_height
        self._video_width = video_width
        self._max_num_instances = max_num_instances
        self._max_lost_frame_count = max_lost_frame_count
        self._min_box_rel_dim = min_box_rel_dim
        self._min_instance_period = min_instance_period
        self._track_iou_threshold = track_iou_threshold

    @classmethod
    def from_config(cls, cfg: Any) -> Dict[str, Any]:
        return _tracker_config(cfg)

    def update(self, instances: Instances) -> Instances:
        _check_instances(instances)
        instances = self._initialize_extra_fields(instances)
        if self._prev_instances is not None:
            iou_all = pairwise_iou(instances.pred_boxes, self._prev_instances.pred_boxes)
            self._reset_fields()
            for pair in self._create_prediction_pairs(instances, iou_all):
                idx, prev_idx, prev_id = pair["idx"], pair["prev_idx"], pair["prev_id"]
                if idx in self._matched_idx or prev_id in self._matched_ID:
                    continue
                if pair["IoU"] < self._track_iou_threshold:
                    break  # pairs come by decreasing IoU
                instances.ID[idx] = prev_id
                instances.ID_period[idx] = pair["prev_period"] + 1
                instances.lost_frame_count[idx] = 0
                self._matched_idx.add(idx)
                self._matched_ID.add(prev_id)
                self._untracked_prev_idx.discard(prev_idx)
            instances = self._assign_new_id(instances)
            instances = self._merge_untracked_instances(instances)
        self._prev_instances = copy.deepcopy(instances)
        return instances

    def _create_prediction_pairs(self, instances: Instances, iou_all: torch.Tensor) -> List[Dict]:
        """Every (current, previous) pair, by decreasing IoU (stable on ties)."""
        prev = self._prev_instances
        iou = iou_all.cpu().numpy()
        order = np.argsort(-iou, axis=None, kind="stable")
        pairs = []
        for flat in order.tolist():
            i, j = divmod(flat, iou.shape[1])
            pairs.append(
                {"idx": i, "prev_idx": j, "prev_id": prev.ID[j], "IoU": float(iou[i, j]),
                 "prev_period": prev.ID_period[j]}
            )
        return pairs

    def _initialize_extra_fields(self, instances: Instances) -> Instances:
        """Add ID, ID_period and lost_frame_count; on the first frame every instance
        gets a new ID."""
        n = len(instances)
        if not instances.has("ID"):
            instances.set("ID", [None] * n)
        if not instances.has("ID_period"):
            instances.set("ID_period", [None] * n)
        if not instances.has("lost_frame_count"):
            instances.set("lost_frame_count", [None] * n)
        if self._prev_instances is None:
            instances.ID = list(range(self._id_count, self._id_count + n))
            self._id_count += n
            instances.ID_period = [1] * n
            instances.lost_frame_count = [0] * n
        return instances

    def _reset_fields(self) -> None:
        self._matched_idx = set()
        self._matched_ID = set()
        self._untracked_prev_idx = set(range(len(self._prev_instances)))

    def _assign_new_id(self, instances: Instances) -> Instances:
        for idx in sorted(set(range(len(instances))) - self._matched_idx):
            instances.ID[idx] = self._id_count
            self._id_count += 1
            instances.ID_period[idx] = 1
            instances.lost_frame_count[idx] = 0
        return instances

    def _merge_untracked_instances(self, instances: Instances) -> Instances:
        """Append the previous frame's unmatched instances that may still come back."""
        kept = [i for i in sorted(self._untracked_prev_idx) if self._keep_lost(i)]
        kept = kept[: max(self._max_num_instances - len(instances), 0)]
        if not kept:
            return instances
        prev = self._prev_instances
        index = torch.tensor(kept, dtype=torch.long)
        carried = Instances(instances.image_size)
        for name, value in prev.get_fields().items():
            if not instances.has(name):
                continue  # Instances.cat needs the same fields
            if isinstance(value, list):
                carried.set(name, [value[i] for i in kept])
            else:
                carried.set(name, value[index.to(_device_of(value))])
        carried.lost_frame_count = [prev.lost_frame_count[i] + 1 for i in kept]
        for name in instances.get_fields():
            if not carried.has(name):
                raise ValueError(f"{type(self).__name__}: field {name!r} of this frame is missing in the previous one")
        return Instances.cat([instances, carried])

    def _keep_lost(self, prev_idx: int) -> bool:
        prev = self._prev_instances
        x0, y0, x1, y1 = prev.pred_boxes.tensor[prev_idx].tolist()
        return (
            (x1 - x0) / self._video_width >= self._min_box_rel_dim
            and (y1 - y0) / self._video_height >= self._min_box_rel_dim
            and prev.lost_frame_count[prev_idx] < self._max_lost_frame_count
            and prev.ID_period[prev_idx] > self._min_instance_period
        )


def _device_of(value: Any) -> Optional[torch.device]:
    dev = getattr(value, "device", None)
    return dev if isinstance(dev, torch.device) else torch.device("cpu")


def _check_instances(instances: Instances) -> None:
    if not isinstance(instances, Instances):
        raise TypeError(f"tracker.update: expected Instances, got {type(instances)}")
    if not instances.has("pred_boxes") or not isinstance(instances.pred_boxes, Boxes):
        raise ValueError("tracker.update: instances need a 'pred_boxes' field of type Boxes")
    if instances.has("pred_keypoints"):
        raise ValueError("tracker.update: instances with 'pred_keypoints' cannot be tracked (as upstream)")

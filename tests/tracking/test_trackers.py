"""Trackers on synthetic tracks: moving boxes keep their IDs, new ones get new IDs,
lost ones are carried over, and the Hungarian trackers assign optimally."""
import numpy as np
import pytest
import torch

from detectron2.config import CfgNode
from detectron2.structures import Boxes, Instances
from detectron2.tracking import (
    TRACKER_HEADS_REGISTRY,
    BBoxIOUTracker,
    IOUWeightedHungarianBBoxIOUTracker,
    VanillaHungarianBBoxIOUTracker,
    build_tracker_head,
)

TRACKERS = [BBoxIOUTracker, VanillaHungarianBBoxIOUTracker, IOUWeightedHungarianBBoxIOUTracker]


def _frame(boxes):
    t = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = len(t)
    return Instances((100, 200), pred_boxes=Boxes(t), scores=torch.ones(n), pred_classes=torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize("cls", TRACKERS)
def test_random_moving_tracks_keep_their_ids(cls):
    rng = np.random.default_rng(0)
    starts = [[10.0 + 45 * i, 20.0, 40.0 + 45 * i, 60.0] for i in range(4)]
    tracker = cls(video_height=100, video_width=200)
    order0 = None
    for step in range(6):
        boxes = np.array(starts) + step * 1.5 + rng.uniform(-0.5, 0.5, size=(4, 4))
        perm = rng.permutation(4)  # detections come in any order
        out = tracker.update(_frame(boxes[perm]))
        ids = dict(zip(perm.tolist(), out.ID))
        if order0 is None:
            order0 = ids
            assert sorted(ids.values()) == [0, 1, 2, 3]
        assert ids == order0
        assert out.ID_period == [step + 1] * 4


@pytest.mark.parametrize("cls", TRACKERS)
def test_new_and_lost_instances(cls):
    tracker = cls(video_height=100, video_width=200, max_lost_frame_count=1, min_instance_period=0)
    tracker.update(_frame([[10, 10, 50, 50]]))
    out = tracker.update(_frame([[12, 10, 52, 50], [120, 10, 160, 60]]))
    assert out.ID == [0, 1]
    out = tracker.update(_frame([[120, 12, 160, 62]]))  # track 0 missed for one frame
    assert out.ID == [1, 0] and out.lost_frame_count == [0, 1] and len(out) == 2
    out = tracker.update(_frame([[120, 12, 160, 62]]))  # still missing: dropped
    assert out.ID == [1] and len(out) == 1


def test_hungarian_assignment_beats_greedy():
    # Greedy takes the best pair (a0, p0) first and leaves a1 unmatched; the optimal
    # assignment matches both current boxes.
    prev = [[0, 0, 10, 10], [6, 0, 16, 10]]
    cur = [[2, 0, 12, 10], [-3, 0, 7, 10]]
    for cls, expected in ((BBoxIOUTracker, 1), (VanillaHungarianBBoxIOUTracker, 2)):
        tracker = cls(video_height=100, video_width=200, track_iou_threshold=0.3)
        tracker.update(_frame(prev))
        out = tracker.update(_frame(cur))
        assert sum(i in (0, 1) for i in out.ID[:2]) == expected, cls


def test_registry_and_build_from_config():
    cfg = CfgNode({"TRACKER_HEADS": {"TRACKER_NAME": "IOUWeightedHungarianBBoxIOUTracker",
                                     "VIDEO_HEIGHT": 100, "VIDEO_WIDTH": 200, "TRACK_IOU_THRESHOLD": 0.4}})
    tracker = build_tracker_head(cfg)
    assert isinstance(tracker, IOUWeightedHungarianBBoxIOUTracker) and tracker._track_iou_threshold == 0.4
    assert "BBoxIOUTracker" in TRACKER_HEADS_REGISTRY
    with pytest.raises(ValueError, match="pred_boxes"):
        BBoxIOUTracker(video_height=10, video_width=10).update(Instances((10, 10), scores=torch.ones(1)))

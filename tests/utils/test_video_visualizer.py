"""VideoVisualizer: an instance that moves keeps its colour from frame to frame."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from detectron2.structures import Boxes, Instances
from detectron2.utils.visualizer import ColorMode
from detectron2.utils.video_visualizer import VideoVisualizer

H, W = 96, 128
META = SimpleNamespace(thing_classes=["cat", "dog"])


def _frame():
    return np.full((H, W, 3), 128, dtype=np.uint8)


def _masked(boxes, classes):
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.pred_classes = torch.tensor(classes)
    inst.scores = torch.full((len(boxes),), 0.9)
    masks = torch.zeros(len(boxes), H, W, dtype=torch.bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        masks[i, int(y0):int(y1), int(x0):int(x1)] = True
    inst.pred_masks = masks
    return inst


def _fill_at(img, x, y):
    return img[y, x].astype(int)


def test_moving_masked_instance_keeps_its_colour():
    np.random.seed(0)
    video = VideoVisualizer(META)
    fills = []
    for shift in range(0, 12, 3):
        out = video.draw_instance_predictions(_frame(), _masked([[10 + shift, 10, 40 + shift, 40]], [0])).get_image()
        fills.append(_fill_at(out, 14 + shift, 14))
    assert all(np.abs(f - fills[0]).max() <= 2 for f in fills), fills
    assert np.abs(fills[0] - 128).max() > 10  # actually coloured


def test_new_object_gets_another_colour_and_class_change_is_not_matched():
    np.random.seed(0)
    video = VideoVisualizer(META)
    first = video.draw_instance_predictions(_frame(), _masked([[10, 10, 40, 40]], [0])).get_image()
    second = video.draw_instance_predictions(_frame(), _masked([[12, 10, 42, 40], [80, 50, 110, 80]], [0, 0])).get_image()
    third = video.draw_instance_predictions(_frame(), _masked([[14, 10, 44, 40]], [1])).get_image()
    cat = _fill_at(first, 15, 15)
    assert np.abs(_fill_at(second, 17, 15) - cat).max() <= 2
    assert np.abs(_fill_at(second, 85, 55) - cat).max() > 10
    assert np.abs(_fill_at(third, 19, 15) - cat).max() > 10  # same place, other class: a new colour


def test_box_only_predictions_are_tracked_by_box_iou():
    np.random.seed(0)
    video = VideoVisualizer(META)
    colors = []
    for shift in (0, 2, 4):
        inst = Instances((H, W), pred_boxes=Boxes(torch.tensor([[10.0 + shift, 10, 50 + shift, 50]])),
                         pred_classes=torch.tensor([1]), scores=torch.tensor([0.5]))
        video.draw_instance_predictions(_frame(), inst)
        colors.append(tuple(video._old_instances[0].color))
    assert colors[0] == colors[1] == colors[2]


def test_track_ids_fix_the_colours():
    meta = SimpleNamespace(thing_classes=["cat"], assign_colors_by_id=True)
    video = VideoVisualizer(meta)
    a = _masked([[10, 10, 40, 40], [70, 40, 100, 70]], [0, 0])
    a.ID = torch.tensor([5, 9])
    out1 = video.draw_instance_predictions(_frame(), a).get_image()
    b = _masked([[70, 40, 100, 70], [10, 10, 40, 40]], [0, 0])
    b.ID = torch.tensor([5, 9])  # the ids swap places
    out2 = video.draw_instance_predictions(_frame(), b).get_image()
    assert np.abs(_fill_at(out1, 15, 15) - _fill_at(out2, 75, 45)).max() <= 2


def test_panoptic_things_keep_colours_across_frames():
    np.random.seed(0)
    video = VideoVisualizer(SimpleNamespace(thing_classes=["cat"], stuff_classes=["sky"], stuff_colors=[(0, 0, 0)]))
    fills = []
    for shift in (0, 3):
        pan = torch.zeros((H, W), dtype=torch.int32)
        pan[20:50, 20 + shift:50 + shift] = 1
        info = [{"id": 0, "category_id": 0, "isthing": False}, {"id": 1, "category_id": 0, "isthing": True}]
        out = video.draw_panoptic_seg(_frame(), pan, info).get_image()
        fills.append(_fill_at(out, 23 + shift, 23))
    assert np.abs(fills[0] - fills[1]).max() <= 2


def test_image_bw_and_bad_mode():
    video = VideoVisualizer(META, ColorMode.IMAGE_BW)
    frame = np.zeros((H, W, 3), dtype=np.uint8)
    frame[:] = (200, 40, 40)
    out = video.draw_instance_predictions(frame, _masked([[10, 10, 40, 40]], [0])).get_image()
    assert out[80, 100, 0] == out[80, 100, 1] == out[80, 100, 2]
    empty = Instances((H, W), pred_boxes=Boxes(torch.zeros(0, 4)), pred_classes=torch.zeros(0, dtype=torch.int64))
    np.testing.assert_array_equal(video.draw_instance_predictions(frame, empty).get_image(), frame)
    with pytest.raises(ValueError, match="instance_mode"):
        VideoVisualizer(META, ColorMode.SEGMENTATION)

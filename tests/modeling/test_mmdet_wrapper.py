"""mmdet wrappers with mmdet-style stand-in modules (mmdet itself is not installed)."""
import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from detectron2.layers import ShapeSpec
from detectron2.modeling.mmdet_wrapper import MMDetBackbone, MMDetDetector
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

HAS_MMDET = importlib.util.find_spec("mmdet") is not None


class _TwoLevels(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.initialized = False

    def init_weights(self, pretrained=None):
        self.initialized = True

    def forward(self, x):
        a = self.a(x)
        return [a, self.b(a)]


def test_backbone_wraps_list_outputs_into_named_dict():
    body = _TwoLevels()
    shapes = [ShapeSpec(channels=4, stride=2), ShapeSpec(channels=8, stride=4)]
    bb = MMDetBackbone(body, output_shapes=shapes, output_names=["p1", "p2"])
    assert body.initialized
    x = torch.rand(2, 3, 16, 16)
    out = bb(x)
    assert list(out) == ["p1", "p2"] and torch.equal(out["p2"], body(x)[1])
    assert bb.output_shape()["p2"].stride == 4
    with pytest.raises(ValueError, match="output_shapes"):
        MMDetBackbone(_TwoLevels(), output_shapes=shapes[:1])(x)


class _FakeDetector(nn.Module):
    """mmdet 2.x detector interface: simple_test gives per-class (k, 5) arrays."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def simple_test(self, images, metas, rescale=False):
        self.seen = (images.shape, metas, rescale)
        return [[np.array([[1, 2, 3, 4, 0.9]], dtype=np.float32), np.zeros((0, 5), np.float32),
                 np.array([[5, 6, 7, 8, 0.5], [0, 0, 1, 1, 0.1]], dtype=np.float32)] for _ in metas]

    def forward_train(self, images, metas, gt_bboxes, gt_labels):
        return {"loss_cls": self.w * 2, "loss_bbox": [self.w, self.w * 3], "acc": torch.tensor(0.75)}


def test_detector_inference_and_training_formats():
    det = MMDetDetector(_FakeDetector(), size_divisibility=32, pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0))
    det.eval()
    inputs = [{"image": torch.rand(3, 40, 50), "height": 80, "width": 100}]
    out = det(inputs)[0]["instances"]
    assert out.image_size == (80, 100)
    assert out.pred_classes.tolist() == [0, 2, 2]
    assert torch.allclose(out.scores, torch.tensor([0.9, 0.5, 0.1]))
    shape, metas, rescale = det.detector.seen
    assert tuple(shape[-2:]) == (64, 64) and rescale and metas[0]["ori_shape"] == (80, 100, 3)
    with pytest.raises(ValueError, match="height/width"):
        det(inputs + [{"image": torch.rand(3, 40, 50)}])

    det.train()
    gt = Instances((40, 50), gt_boxes=Boxes(torch.tensor([[1.0, 1.0, 9.0, 9.0]])), gt_classes=torch.tensor([1]))
    with EventStorage() as storage:
        losses = det([{"image": torch.rand(3, 40, 50), "instances": gt}])
        assert storage.latest()["acc"][0] == pytest.approx(0.75)
    assert set(losses) == {"loss_cls", "loss_bbox"} and losses["loss_bbox"].item() == pytest.approx(4.0)


@pytest.mark.skipif(HAS_MMDET, reason="checks the error raised when mmdet is absent")
def test_config_dicts_need_mmdet_with_a_clear_error():
    with pytest.raises(ImportError, match="mmdet"):
        MMDetBackbone({"type": "ResNet", "depth": 50}, output_shapes=[ShapeSpec(channels=256, stride=4)])
    with pytest.raises(ImportError, match="mmdetection"):
        MMDetDetector({"type": "MaskRCNN"}, pixel_mean=(0.0,), pixel_std=(1.0,))

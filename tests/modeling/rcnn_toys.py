"""Tiny models and configs shared by the RPN / R-CNN tests: a two-level toy backbone
(strides 4 and 8) that builds in milliseconds, and a config that wires an RPN on it."""
from typing import Dict

import torch
from torch.nn import functional as F

from detectron2.config import get_cfg
from detectron2.layers import Conv2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.structures import Boxes, Instances


class ToyBackbone(Backbone):
    """Two strided convs: "p2" (stride 4) and "p3" (stride 8), ``channels`` each."""

    def __init__(self, in_channels: int = 3, channels: int = 8):
        super().__init__()
        self.stem = Conv2d(in_channels, channels, kernel_size=3, stride=4, padding=1)
        self.down = Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)
        self._out_features = ["p2", "p3"]
        self._out_feature_channels = {"p2": channels, "p3": channels}
        self._out_feature_strides = {"p2": 4, "p3": 8}

    @property
    def size_divisibility(self) -> int:
        return 8

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        p2 = F.relu(self.stem(x))
        return {"p2": p2, "p3": F.relu(self.down(p2))}


@BACKBONE_REGISTRY.register()
def build_toy_rpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    return ToyBackbone(input_shape.channels)


def toy_cfg():
    """A config of a ProposalNetwork / RPN on ToyBackbone, on the CPU."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ProposalNetwork"
    cfg.MODEL.BACKBONE.NAME = "build_toy_rpn_backbone"
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 100
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 30
    return cfg


def toy_instances(image_size=(64, 80), boxes=((8.0, 10.0, 40.0, 50.0), (30.0, 5.0, 70.0, 30.0))) -> Instances:
    tensor = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return Instances(image_size, gt_boxes=Boxes(tensor), gt_classes=torch.zeros(len(tensor), dtype=torch.int64))


def toy_inputs(with_instances: bool = True):
    """Two images of different sizes, as a DatasetMapper would give them."""
    g = torch.Generator().manual_seed(0)
    inputs = [
        {"image": torch.rand(3, 64, 80, generator=g) * 255, "height": 128, "width": 160},
        {"image": torch.rand(3, 56, 48, generator=g) * 255},
    ]
    if with_instances:
        inputs[0]["instances"] = toy_instances((64, 80))
        inputs[1]["instances"] = toy_instances((56, 48), boxes=((4.0, 4.0, 30.0, 40.0),))
    return inputs

"""Small shared pieces of the dense detector / segmentation tests: a ResNet-18 FPN
config and ground-truth Instances from plain lists."""
from typing import List, Sequence, Tuple

import torch

from detectron2.config import get_cfg
from detectron2.structures import Boxes, Instances


def r18_fpn_cfg(backbone: str, in_features: List[str], fpn_channels: int, device: str = "cpu"):
    """A config of ResNet-18 + FPN on ``in_features`` with ``fpn_channels`` outputs."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = device
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = list(in_features)
    cfg.MODEL.FPN.IN_FEATURES = list(in_features)
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_channels
    return cfg


def gt_instances(size: Tuple[int, int], boxes: Sequence[Sequence[float]], classes: Sequence[int]) -> Instances:
    """Instances with gt_boxes (XYXY) and gt_classes."""
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst

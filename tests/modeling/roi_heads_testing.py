"""Shared inputs of the ROI-head tests: tiny FPN-like features, hand-made proposals and
ground truth, and small configs."""
from typing import Dict, List

import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.structures import BitMasks, Boxes, Instances, Keypoints, RotatedBoxes

IMAGE_SIZE = (64, 64)
CHANNELS = 8
STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}


def input_shape(channels: int = CHANNELS) -> Dict[str, ShapeSpec]:
    return {k: ShapeSpec(channels=channels, stride=s) for k, s in STRIDES.items()}


def fpn_features(batch: int = 2, channels: int = CHANNELS, device="cpu", seed: int = 0) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_SIZE
    return {
        k: torch.randn(batch, channels, h // s, w // s, generator=g).to(device) for k, s in STRIDES.items()
    }


def small_cfg(name: str = "StandardROIHeads"):
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NAME = name
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (8, 8)
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 4
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    return cfg


GT_BOXES = [
    [[4.0, 6.0, 30.0, 40.0], [30.0, 20.0, 60.0, 60.0]],
    [[10.0, 10.0, 50.0, 34.0]],
]
GT_CLASSES = [[0, 2], [1]]


def _box_mask(box: List[float], h: int, w: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m[y0:y1, x0:x1] = True
    return m


def _box_keypoints(box: List[float], k: int) -> torch.Tensor:
    """k keypoints on the box diagonal, all visible."""
    x0, y0, x1, y1 = box
    t = torch.linspace(0.2, 0.8, k)
    return torch.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0), torch.full((k,), 2.0)], dim=1)


def targets(device="cpu", masks: bool = False, keypoints: int = 0) -> List[Instances]:
    out = []
    for boxes, classes in zip(GT_BOXES, GT_CLASSES):
        inst = Instances(IMAGE_SIZE)
        inst.gt_boxes = Boxes(torch.tensor(boxes, device=device))
        inst.gt_classes = torch.tensor(classes, dtype=torch.int64, device=device)
        if masks:
            inst.gt_masks = BitMasks(torch.stack([_box_mask(b, *IMAGE_SIZE) for b in boxes]).to(device))
        if keypoints:
            inst.gt_keypoints = Keypoints(torch.stack([_box_keypoints(b, keypoints) for b in boxes]).to(device))
        out.append(inst)
    return out


def proposals(num: int = 20, device="cpu", seed: int = 1) -> List[Instances]:
    """``num`` random boxes per image, plus jittered copies of the gt boxes."""
    g = torch.Generator().manual_seed(seed)
    h, w = IMAGE_SIZE
    out = []
    for boxes in GT_BOXES:
        xy = torch.rand(num, 2, generator=g) * torch.tensor([w - 8.0, h - 8.0])
        wh = 4 + torch.rand(num, 2, generator=g) * 30
        rand = torch.cat([xy, (xy + wh).clamp(max=w - 1)], dim=1)
        gt = torch.tensor(boxes)
        jitter = gt + torch.randn(gt.shape, generator=g)
        inst = Instances(IMAGE_SIZE)
        inst.proposal_boxes = Boxes(torch.cat([rand, jitter]).to(device))
        inst.objectness_logits = torch.randn(num + len(gt), generator=g).to(device)
        out.append(inst)
    return out


def rotated_targets(device="cpu") -> List[Instances]:
    out = []
    for boxes, classes in zip(GT_BOXES, GT_CLASSES):
        b = torch.tensor(boxes)
        xywha = torch.stack(
            [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1], torch.full((len(b),), 15.0)],
            dim=1,
        )
        inst = Instances(IMAGE_SIZE)
        inst.gt_boxes = RotatedBoxes(xywha.to(device))
        inst.gt_classes = torch.tensor(classes, dtype=torch.int64, device=device)
        out.append(inst)
    return out


def rotated_proposals(num: int = 20, device="cpu", seed: int = 2) -> List[Instances]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in rotated_targets():
        gt = t.gt_boxes.tensor
        ctr = 8 + torch.rand(num, 2, generator=g) * 48
        wh = 6 + torch.rand(num, 2, generator=g) * 24
        angle = (torch.rand(num, 1, generator=g) - 0.5) * 90
        jitter = gt + torch.randn(gt.shape, generator=g)
        inst = Instances(IMAGE_SIZE)
        inst.proposal_boxes = RotatedBoxes(torch.cat([torch.cat([ctr, wh, angle], 1), jitter]).to(device))
        inst.objectness_logits = torch.randn(num + len(gt), generator=g).to(device)
        out.append(inst)
    return out

"""GeneralizedRCNN built from a config with the real ROI heads: a tiny Mask + Keypoint
R-CNN and a Cascade Mask R-CNN (ResNet-18 FPN, 64 px images) train one step and run
inference end to end."""
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage


def _cfg(kind: str):
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads" if kind == "cascade" else "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = kind == "cascade"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.KEYPOINT_ON = kind == "mask_keypoint"
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (16, 16)
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 5
    cfg.TEST.DETECTIONS_PER_IMAGE = 10
    return cfg


def _inputs(with_gt: bool):
    g = torch.Generator().manual_seed(0)
    out = []
    for boxes in ([[4.0, 6.0, 40.0, 50.0], [30.0, 20.0, 60.0, 60.0]], [[10.0, 10.0, 50.0, 34.0]]):
        d = {"image": (torch.rand(3, 64, 64, generator=g) * 255), "height": 64, "width": 64}
        if with_gt:
            inst = Instances((64, 64))
            inst.gt_boxes = Boxes(torch.tensor(boxes))
            inst.gt_classes = torch.arange(len(boxes))
            masks = torch.zeros(len(boxes), 64, 64, dtype=torch.bool)
            for i, (x0, y0, x1, y1) in enumerate(boxes):
                masks[i, int(y0):int(y1), int(x0):int(x1)] = True
            inst.gt_masks = BitMasks(masks)
            kps = torch.tensor(boxes)[:, None, :2] + torch.rand(len(boxes), 5, 2, generator=g) * 10
            inst.gt_keypoints = Keypoints(torch.cat([kps, torch.full((len(boxes), 5, 1), 2.0)], dim=2))
            d["instances"] = inst
        out.append(d)
    return out


@pytest.mark.parametrize("kind", ["mask_keypoint", "cascade"])
def test_rcnn_trains_and_infers(kind):
    torch.manual_seed(0)
    model = build_model(_cfg(kind))
    with EventStorage():
        losses = model(_inputs(with_gt=True))
    expected = {"loss_rpn_cls", "loss_rpn_loc"}
    if kind == "cascade":
        expected |= {f"{n}_stage{k}" for n in ("loss_cls", "loss_box_reg") for k in range(3)} | {"loss_mask"}
    else:
        expected |= {"loss_cls", "loss_box_reg", "loss_mask", "loss_keypoint"}
    assert set(losses) == expected
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()

    model.eval()
    with torch.no_grad():
        outputs = model(_inputs(with_gt=False))
    for out in outputs:
        inst = out["instances"]
        assert inst.image_size == (64, 64) and 0 < len(inst) <= 10
        assert inst.pred_masks.shape == (len(inst), 64, 64) and inst.pred_masks.dtype == torch.bool
        if kind == "mask_keypoint":
            assert inst.pred_keypoints.shape == (len(inst), 5, 3)

"""The pieces of this package wired as a Mask R-CNN FPN config wires them, starting
from a YAML file with the backbone / anchor / pooler settings of upstream's
Base-RCNN-FPN.yaml."""
import torch

from detectron2.config import get_cfg
from detectron2.modeling import (
    Box2BoxTransform,
    Matcher,
    ROIPooler,
    build_anchor_generator,
    build_backbone,
    subsample_labels,
)
from detectron2.structures import Boxes, ImageList, pairwise_iou

BASE_RCNN_FPN = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
    NAME: "StandardROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
  ROI_MASK_HEAD:
    NAME: "MaskRCNNConvUpsampleHead"
    NUM_CONV: 4
    POOLER_RESOLUTION: 14
VERSION: 2
"""


def test_base_rcnn_fpn_pieces(tmp_path):
    path = tmp_path / "Base-RCNN-FPN.yaml"
    path.write_text(BASE_RCNN_FPN)
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    torch.manual_seed(0)

    backbone = build_backbone(cfg).eval()
    images = ImageList.from_tensors([torch.randn(3, 90, 120), torch.randn(3, 100, 80)], backbone.size_divisibility)
    assert images.tensor.shape == (2, 3, 128, 128)
    with torch.no_grad():
        features = backbone(images.tensor)
    shapes = backbone.output_shape()

    anchor_generator = build_anchor_generator(cfg, [shapes[f] for f in cfg.MODEL.RPN.IN_FEATURES])
    anchors = anchor_generator([features[f] for f in cfg.MODEL.RPN.IN_FEATURES])
    assert anchor_generator.num_anchors == [3] * 5
    assert [len(a) for a in anchors] == [32 * 32 * 3, 16 * 16 * 3, 8 * 8 * 3, 4 * 4 * 3, 2 * 2 * 3]
    all_anchors = Boxes.cat(anchors)

    # RPN-style matching and sampling of those anchors against two ground-truth boxes.
    gt = Boxes(torch.tensor([[10.0, 10.0, 60.0, 50.0], [30.0, 40.0, 110.0, 120.0]]))
    matcher = Matcher(cfg.MODEL.RPN.IOU_THRESHOLDS, cfg.MODEL.RPN.IOU_LABELS, allow_low_quality_matches=True)
    matched, labels = matcher(pairwise_iou(gt, all_anchors))
    assert set(matched[labels == 1].tolist()) == {0, 1}  # each gt has a positive anchor
    pos, neg = subsample_labels(labels, cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE, cfg.MODEL.RPN.POSITIVE_FRACTION, 0)
    assert len(pos) + len(neg) == 256 and 0 < len(pos) <= 128

    # Encoding the matched boxes and decoding them again gives the ground truth back.
    transform = Box2BoxTransform(weights=cfg.MODEL.RPN.BBOX_REG_WEIGHTS)
    deltas = transform.get_deltas(all_anchors.tensor[pos], gt.tensor[matched[pos]])
    torch.testing.assert_close(transform.apply_deltas(deltas, all_anchors.tensor[pos]), gt.tensor[matched[pos]])

    # Box and mask poolers over p2-p5.
    in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
    scales = [1.0 / shapes[f].stride for f in in_features]
    proposals = [gt, Boxes(torch.tensor([[0.0, 0.0, 127.0, 127.0]]))]
    for res, pooler_type in ((7, cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE), (14, cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE)):
        pooler = ROIPooler(res, scales, 0, pooler_type)
        out = pooler([features[f] for f in in_features], proposals)
        assert out.shape == (3, 256, res, res) and torch.isfinite(out).all()

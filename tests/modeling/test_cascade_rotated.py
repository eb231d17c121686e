import os
import sys

import pytest
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.modeling import CascadeROIHeads, RROIHeads, build_roi_heads
from detectron2.modeling.box_regression import Box2BoxTransformRotated
from detectron2.modeling.roi_heads.cascade_rcnn import _ScaleGradient
from detectron2.modeling.roi_heads.rotated_fast_rcnn import (
    RotatedFastRCNNOutputLayers,
    fast_rcnn_inference_rotated,
    fast_rcnn_inference_single_image_rotated,
)
from detectron2.structures import Instances, RotatedBoxes
from detectron2.utils.events import EventStorage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roi_heads_testing as T  # noqa: E402


def _cascade_cfg(tiny=True):
    cfg = T.small_cfg("CascadeROIHeads") if tiny else get_cfg()
    cfg.MODEL.ROI_HEADS.NAME = "CascadeROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    return cfg


# ---------------------------------------------------------------- Cascade R-CNN


def test_cascade_matches_upstream_structure():
    heads = build_roi_heads(_cascade_cfg(tiny=False), T.input_shape(256))
    assert isinstance(heads, CascadeROIHeads) and heads.num_cascade_stages == 3
    shapes = {k: tuple(v.shape) for k, v in heads.state_dict().items()}
    expected = {}
    for k in range(3):
        expected.update(
            {
                f"box_head.{k}.fc1.weight": (1024, 12544),
                f"box_head.{k}.fc1.bias": (1024,),
                f"box_head.{k}.fc2.weight": (1024, 1024),
                f"box_head.{k}.fc2.bias": (1024,),
                f"box_predictor.{k}.cls_score.weight": (81, 1024),
                f"box_predictor.{k}.cls_score.bias": (81,),
                f"box_predictor.{k}.bbox_pred.weight": (4, 1024),
                f"box_predictor.{k}.bbox_pred.bias": (4,),
            }
        )
    assert shapes == expected
    assert sum(p.numel() for p in heads.parameters()) == 3 * (12846080 + 1049600) + 3 * (83025 + 4100)
    weights = [tuple(p.box2box_transform.weights) for p in heads.box_predictor]
    assert weights == [(10.0, 10.0, 5.0, 5.0), (20.0, 20.0, 10.0, 10.0), (30.0, 30.0, 15.0, 15.0)]
    assert [m.thresholds[1] for m in heads.proposal_matchers] == [0.5, 0.6, 0.7]
    assert heads.proposal_matcher is heads.proposal_matchers[0]


def test_cascade_training_runs_three_stages():
    torch.manual_seed(0)
    cfg = _cascade_cfg()
    cfg.MODEL.MASK_ON = True
    heads = build_roi_heads(cfg, T.input_shape())
    with EventStorage() as storage:
        _, losses = heads(None, T.fpn_features(), T.proposals(), T.targets(masks=True))
        logged = set(storage.latest())
    expected = {f"{name}_stage{k}" for name in ("loss_cls", "loss_box_reg") for k in range(3)} | {"loss_mask"}
    assert set(losses) == expected
    assert {f"stage{k}/fast_rcnn/cls_accuracy" for k in range(3)} <= logged
    assert {"stage1/roi_head/num_fg_samples", "stage2/roi_head/num_bg_samples"} <= logged
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    for k in range(3):
        assert heads.box_head[k].fc1.weight.grad is not None
        assert heads.box_predictor[k].bbox_pred.weight.grad.abs().sum() > 0


def test_cascade_inference_averages_stage_scores():
    torch.manual_seed(0)
    heads = build_roi_heads(_cascade_cfg(), T.input_shape()).eval()
    biases = [torch.tensor([1.0, 0.0, -1.0, 0.5]), torch.tensor([0.0, 2.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 3.0, 1.0])]
    with torch.no_grad():
        for predictor, bias in zip(heads.box_predictor, biases):
            predictor.cls_score.weight.zero_()
            predictor.cls_score.bias.copy_(bias)
            predictor.bbox_pred.weight.zero_()
            predictor.bbox_pred.bias.zero_()  # boxes stay the proposals through the stages
        results, _ = heads(None, T.fpn_features(), T.proposals())
    expected = sum(torch.softmax(b, dim=0) for b in biases) / 3
    for r in results:
        assert len(r) > 0 and set(r.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
        torch.testing.assert_close(r.scores, expected[r.pred_classes])


def test_cascade_empty_boxes_only_dropped_in_training():
    heads = build_roi_heads(_cascade_cfg(), T.input_shape())
    boxes = [torch.tensor([[0.0, 0, 10, 10], [70.0, 70, 80, 80]])]  # the second clips to empty
    prev = T.proposals()[:1]
    prev[0] = prev[0][:2]
    train = heads._create_proposals_from_boxes(boxes, [T.IMAGE_SIZE], prev)
    assert len(train[0]) == 1 and len(train[0].objectness_logits) == 1
    heads.eval()
    test = heads._create_proposals_from_boxes(boxes, [T.IMAGE_SIZE], prev)
    assert len(test[0]) == 2


def test_scale_gradient():
    x = torch.ones(3, requires_grad=True)
    (_ScaleGradient.apply(x, 0.25) * 2).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.5))


def test_cascade_bad_configs():
    cfg = _cascade_cfg()
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = False
    with pytest.raises(ValueError, match="class-agnostic"):
        build_roi_heads(cfg, T.input_shape())
    cfg = _cascade_cfg()
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = (0.4, 0.6, 0.7)
    with pytest.raises(ValueError, match="IOU_THRESHOLDS"):
        build_roi_heads(cfg, T.input_shape())
    cfg = _cascade_cfg()
    cfg.MODEL.ROI_BOX_CASCADE_HEAD.IOUS = (0.5, 0.6)
    with pytest.raises(ValueError, match="BBOX_REG_WEIGHTS"):
        build_roi_heads(cfg, T.input_shape())
    heads = build_roi_heads(_cascade_cfg(), T.input_shape())
    with pytest.raises(TypeError, match="proposal_matchers"):
        CascadeROIHeads(
            box_in_features=["p2"], box_pooler=heads.box_pooler, box_heads=list(heads.box_head),
            box_predictors=list(heads.box_predictor), proposal_matchers=heads.proposal_matchers,
            proposal_matcher=heads.proposal_matcher, num_classes=3, batch_size_per_image=8, positive_fraction=0.25,
        )
    with pytest.raises(ValueError, match="same non-zero number"):
        CascadeROIHeads(
            box_in_features=["p2"], box_pooler=heads.box_pooler, box_heads=list(heads.box_head)[:2],
            box_predictors=list(heads.box_predictor), proposal_matchers=heads.proposal_matchers,
            num_classes=3, batch_size_per_image=8, positive_fraction=0.25,
        )


# ---------------------------------------------------------------- rotated


def _rotated_cfg():
    cfg = T.small_cfg("RROIHeads")
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    return cfg


def test_rotated_heads_structure():
    heads = build_roi_heads(_rotated_cfg(), T.input_shape())
    assert isinstance(heads, RROIHeads)
    assert isinstance(heads.box_predictor, RotatedFastRCNNOutputLayers)
    assert isinstance(heads.box_predictor.box2box_transform, Box2BoxTransformRotated)
    assert heads.box_predictor.bbox_pred.out_features == 3 * 5
    assert type(heads.box_pooler.level_poolers[0]).__name__ == "ROIAlignRotated"
    assert set(heads.state_dict()) == {
        "box_head.fc1.weight", "box_head.fc1.bias", "box_head.fc2.weight", "box_head.fc2.bias",
        "box_predictor.cls_score.weight", "box_predictor.cls_score.bias",
        "box_predictor.bbox_pred.weight", "box_predictor.bbox_pred.bias",
    }


def test_rotated_heads_train_and_inference(device):
    torch.manual_seed(0)
    heads = build_roi_heads(_rotated_cfg(), T.input_shape()).to(device)
    features = {k: v.requires_grad_(True) for k, v in T.fpn_features(device=device).items()}
    with EventStorage() as storage:
        proposals, losses = heads(None, features, T.rotated_proposals(device=device), T.rotated_targets(device))
        assert "roi_head/num_fg_samples" in storage.latest()
    assert set(losses) == {"loss_cls", "loss_box_reg"} and all(torch.isfinite(v) for v in losses.values())
    assert isinstance(proposals[0].gt_boxes, RotatedBoxes)
    fg = proposals[0].gt_classes != heads.num_classes
    assert fg.any()
    sum(losses.values()).backward()
    assert features["p2"].grad is not None and heads.box_predictor.bbox_pred.weight.grad.abs().sum() > 0

    heads.eval()
    with torch.no_grad():
        results, _ = heads(None, features, T.rotated_proposals(device=device))
    for r in results:
        assert isinstance(r.pred_boxes, RotatedBoxes) and r.pred_boxes.tensor.shape[1] == 5
        assert set(r.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
        assert r.pred_boxes.device.type == device.type


def _rotated_case(device="cpu"):
    scores = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.15, 0.05], [0.5, 0.4, 0.1]], device=device)
    boxes = torch.tensor(
        [
            [20, 20, 10, 10, 30, 50, 50, 10, 10, 0],
            [21, 20, 10, 10, 30, 20, 20, 10, 10, 30],  # class 0 overlaps row 0's: suppressed
            [20, 20, float("inf"), 10, 30, 20, 20, 10, 10, 30],  # dropped
        ],
        device=device,
    )
    return boxes, scores


def test_rotated_inference_hand_case():
    boxes, scores = _rotated_case()
    result, inds = fast_rcnn_inference_single_image_rotated(boxes, scores, (100, 100), 0.05, 0.5, -1)
    torch.testing.assert_close(result.scores, torch.tensor([0.9, 0.15]))
    assert result.pred_classes.tolist() == [0, 1] and inds.tolist() == [0, 1]
    torch.testing.assert_close(
        result.pred_boxes.tensor, torch.tensor([[20.0, 20, 10, 10, 30], [20.0, 20, 10, 10, 30]])
    )
    batch, _ = fast_rcnn_inference_rotated([boxes, boxes[:1]], [scores, scores[:1]], [(100, 100)] * 2, 0.05, 0.5, 1)
    assert [len(r) for r in batch] == [1, 1]
    with pytest.raises(ValueError, match="'boxes' must have shape"):
        fast_rcnn_inference_single_image_rotated(boxes[:, :8], scores, (100, 100), 0.05, 0.5, -1)
    with pytest.raises(ValueError, match="one entry per image"):
        fast_rcnn_inference_rotated([boxes], [], [(100, 100)], 0.05, 0.5, -1)


@pytest.mark.cuda
def test_rotated_inference_cuda_matches_cpu():
    boxes, scores = _rotated_case()
    cpu, cpu_inds = fast_rcnn_inference_single_image_rotated(boxes, scores, (100, 100), 0.05, 0.5, -1)
    gpu, gpu_inds = fast_rcnn_inference_single_image_rotated(boxes.cuda(), scores.cuda(), (100, 100), 0.05, 0.5, -1)
    torch.testing.assert_close(gpu.pred_boxes.tensor.cpu(), cpu.pred_boxes.tensor)
    torch.testing.assert_close(gpu.scores.cpu(), cpu.scores)
    assert torch.equal(gpu_inds.cpu(), cpu_inds)


def test_rotated_bad_configs():
    cfg = _rotated_cfg()
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignV2"
    with pytest.raises(ValueError, match="ROIAlignRotated"):
        build_roi_heads(cfg, T.input_shape())
    cfg = _rotated_cfg()
    cfg.MODEL.MASK_ON = True
    with pytest.raises(ValueError, match="mask or keypoint"):
        build_roi_heads(cfg, T.input_shape())
    cfg = _rotated_cfg()
    cfg.MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES = True
    with pytest.raises(ValueError, match="train_on_pred_boxes"):
        build_roi_heads(cfg, T.input_shape())


def test_rotated_predictor_losses_hand_case():
    predictor = RotatedFastRCNNOutputLayers(
        4, box2box_transform=Box2BoxTransformRotated((1.0, 1.0, 1.0, 1.0, 1.0)), num_classes=1
    )
    nn.init.zeros_(predictor.bbox_pred.weight)
    inst = Instances((20, 20))
    inst.proposal_boxes = RotatedBoxes(torch.tensor([[10.0, 10, 4, 4, 0]]))
    inst.objectness_logits = torch.zeros(1)
    inst.gt_boxes = RotatedBoxes(torch.tensor([[11.0, 10, 4, 8, 90]]))
    inst.gt_classes = torch.tensor([0])
    with EventStorage():
        losses = predictor.losses(predictor(torch.zeros(1, 4)), [inst])
    # Targets: dx = 1/4, dy = 0, dw = 0, dh = ln 2, da = pi / 2; predictions are 0 (L1).
    expected = 0.25 + 0.6931472 + 1.5707964
    assert losses["loss_box_reg"].item() == pytest.approx(expected, rel=1e-5)

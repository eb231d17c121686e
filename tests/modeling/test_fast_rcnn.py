import math

import pytest
import torch
from torch.nn import functional as F

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import Box2BoxTransform, FastRCNNConvFCHead, FastRCNNOutputLayers, build_box_head
from detectron2.modeling.roi_heads.fast_rcnn import (
    _log_classification_stats,
    fast_rcnn_inference,
    fast_rcnn_inference_single_image,
)
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage


def _predictor(num_classes=2, **kwargs):
    return FastRCNNOutputLayers(
        ShapeSpec(channels=4), box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), num_classes=num_classes, **kwargs
    )


def _proposals_for_loss(device="cpu"):
    """3 RoIs of one image: class 0, class 1, background (class 2)."""
    inst = Instances((40, 40))
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 20, 10], [5, 5, 15, 15]], device=device))
    inst.gt_boxes = Boxes(torch.tensor([[1.0, 1, 11, 11], [0, 0, 20, 20], [0, 0, 1, 1]], device=device))
    inst.gt_classes = torch.tensor([0, 1, 2], device=device)
    return [inst]


# ---------------------------------------------------------------- structure / upstream facts


def test_fpn_box_head_matches_upstream_shapes():
    """Base-RCNN-FPN: 2 FC of 1024 on 256x7x7 pooled features, 80 classes."""
    cfg = get_cfg()
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    head = build_box_head(cfg, ShapeSpec(channels=256, height=7, width=7))
    assert isinstance(head, FastRCNNConvFCHead)
    assert head.output_shape == ShapeSpec(channels=1024)
    assert {k: tuple(v.shape) for k, v in head.state_dict().items()} == {
        "fc1.weight": (1024, 12544),
        "fc1.bias": (1024,),
        "fc2.weight": (1024, 1024),
        "fc2.bias": (1024,),
    }
    predictor = FastRCNNOutputLayers(cfg, head.output_shape)
    assert {k: tuple(v.shape) for k, v in predictor.state_dict().items()} == {
        "cls_score.weight": (81, 1024),
        "cls_score.bias": (81,),
        "bbox_pred.weight": (320, 1024),
        "bbox_pred.bias": (320,),
    }
    total = sum(p.numel() for p in head.parameters()) + sum(p.numel() for p in predictor.parameters())
    assert total == 12846080 + 1049600 + 83025 + 328000


def test_conv_fc_head_names_and_output_shape():
    head = FastRCNNConvFCHead(ShapeSpec(channels=8, height=7, width=7), conv_dims=[32, 32], fc_dims=[16], conv_norm="GN")
    keys = set(head.state_dict().keys())
    assert {"conv1.weight", "conv1.norm.weight", "conv1.norm.bias", "conv2.weight", "fc1.weight", "fc1.bias"} <= keys
    assert "conv1.bias" not in keys  # a normalized conv has no bias
    assert head(torch.randn(3, 8, 7, 7)).shape == (3, 16)
    convs_only = FastRCNNConvFCHead(ShapeSpec(channels=8, height=7, width=7), conv_dims=[4], fc_dims=[])
    assert convs_only.output_shape == ShapeSpec(channels=4, height=7, width=7)
    assert convs_only(torch.randn(2, 8, 7, 7)).shape == (2, 4, 7, 7)
    with pytest.raises(ValueError, match="conv_dims and fc_dims"):
        FastRCNNConvFCHead(ShapeSpec(channels=8, height=7, width=7), conv_dims=[], fc_dims=[])


def test_predictor_init_and_forward():
    torch.manual_seed(0)
    p = _predictor(num_classes=3)
    assert p.cls_score.bias.abs().sum() == 0 and p.bbox_pred.bias.abs().sum() == 0
    assert p.cls_score.weight.std() < 0.05 and p.bbox_pred.weight.std() < 0.005
    scores, deltas = p(torch.randn(5, 4, 1, 1))  # flattened
    assert scores.shape == (5, 4) and deltas.shape == (5, 12)
    agnostic = _predictor(num_classes=3, cls_agnostic_bbox_reg=True)
    assert agnostic(torch.randn(5, 4))[1].shape == (5, 4)
    with pytest.raises(ValueError, match="'x'"):
        p(torch.randn(5, 3))


def test_from_config_keys():
    cfg = get_cfg()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 5
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.3
    cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST = 0.6
    cfg.TEST.DETECTIONS_PER_IMAGE = 7
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (1.0, 2.0, 3.0, 4.0)
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_WEIGHT = 2.5
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    p = FastRCNNOutputLayers(cfg, ShapeSpec(channels=16))
    assert p.num_classes == 5 and p.bbox_pred.out_features == 4
    assert (p.test_score_thresh, p.test_nms_thresh, p.test_topk_per_image) == (0.3, 0.6, 7)
    assert tuple(p.box2box_transform.weights) == (1.0, 2.0, 3.0, 4.0)
    assert p.loss_weight == {"loss_box_reg": 2.5}
    assert not p.use_fed_loss and not p.use_sigmoid_ce


# ---------------------------------------------------------------- losses


def test_losses_hand_computed():
    p = _predictor(num_classes=2)
    scores = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0], [0.5, 0.5, 3.0]], requires_grad=True)
    deltas = torch.zeros(3, 8)
    deltas[0, :4] = torch.tensor([0.5, 1.0, 0.0, 0.2])  # class 0 of RoI 0; target (1, 1, 0, 0)
    deltas[0, 4:] = 100.0  # class 1 of RoI 0: must be ignored
    deltas[1, 4:] = torch.tensor([0.0, 5.0, 0.0, 3.0])  # class 1 of RoI 1; target (0, 5, 0, 5 ln 2)
    deltas[2] = 50.0  # background RoI: no box loss
    deltas.requires_grad_(True)
    with EventStorage():
        losses = p.losses((scores, deltas), _proposals_for_loss())

    log_softmax = [
        2.0 - math.log(math.exp(2) + 2),
        1.0 - math.log(1 + math.e + math.exp(-1)),
        3.0 - math.log(2 * math.exp(0.5) + math.exp(3)),
    ]
    assert losses["loss_cls"].item() == pytest.approx(-sum(log_softmax) / 3, rel=1e-5)
    expected_box = (0.5 + 0.0 + 0.0 + 0.2 + abs(3.0 - 5 * math.log(2))) / 3  # L1 (beta 0) over all 3 RoIs
    assert losses["loss_box_reg"].item() == pytest.approx(expected_box, rel=1e-5)
    sum(losses.values()).backward()
    assert torch.isfinite(scores.grad).all() and deltas.grad[2].abs().sum() == 0


def test_losses_weights_and_smooth_l1_beta():
    deltas = torch.zeros(3, 8)
    deltas[0, :4] = torch.tensor([0.5, 1.0, 0.0, 0.2])
    scores = torch.zeros(3, 3)
    with EventStorage():
        base = _predictor()(torch.zeros(3, 4))  # just to exercise forward
        assert base[0].shape == (3, 3)
        weighted = _predictor(loss_weight={"loss_box_reg": 3.0}).losses((scores, deltas), _proposals_for_loss())
        plain = _predictor().losses((scores, deltas), _proposals_for_loss())
        smooth = _predictor(smooth_l1_beta=1.0).losses((scores, deltas), _proposals_for_loss())
    assert weighted["loss_box_reg"].item() == pytest.approx(3 * plain["loss_box_reg"].item())
    assert weighted["loss_cls"].item() == pytest.approx(plain["loss_cls"].item())
    # RoI 0: |diffs| (0.5, 0, 0, 0.2) all < beta: 0.5 d^2; RoI 1: zero deltas vs (0, 5, 0, 5 ln 2): d - 0.5.
    expected = (0.5 * 0.25 + 0.5 * 0.04 + (5 - 0.5) + (5 * math.log(2) - 0.5)) / 3
    assert smooth["loss_box_reg"].item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss_type", ["giou", "diou", "ciou"])
def test_iou_box_losses(loss_type):
    p = _predictor(box_reg_loss_type=loss_type)
    props = _proposals_for_loss()
    # Deltas that decode exactly to the gt boxes give zero loss.
    exact = torch.zeros(3, 8)
    exact[0, :4] = torch.tensor([1.0, 1.0, 0.0, 0.0])
    exact[1, 4:] = torch.tensor([0.0, 5.0, 0.0, 5 * math.log(2)])
    noisy = (exact + 0.3 * torch.randn(3, 8)).requires_grad_(True)
    with EventStorage():
        zero = p.losses((torch.zeros(3, 3), exact), props)["loss_box_reg"]
        loss = p.losses((torch.zeros(3, 3), noisy), props)["loss_box_reg"]
    assert zero.item() == pytest.approx(0.0, abs=1e-5)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0


def test_bad_loss_type():
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        _predictor(box_reg_loss_type="l2")


def test_sigmoid_ce_matches_formula():
    p = _predictor(num_classes=2, use_sigmoid_ce=True)
    scores = torch.tensor([[2.0, -1.0, 0.3], [0.0, 1.0, -1.0], [0.5, -0.5, 3.0]])
    with EventStorage():
        loss = p.losses((scores, torch.zeros(3, 8)), _proposals_for_loss())["loss_cls"]
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # background: all zeros
    x = scores[:, :2]
    manual = -(target * torch.log(torch.sigmoid(x)) + (1 - target) * torch.log(1 - torch.sigmoid(x)))
    assert loss.item() == pytest.approx(manual.sum().item() / 3, rel=1e-5)
    probs = p.predict_probs((scores, None), _proposals_for_loss())[0]
    torch.testing.assert_close(probs, torch.sigmoid(scores))


def test_fed_loss_classes_and_loss():
    weights = torch.linspace(1.0, 2.0, 10)
    p = _predictor(
        num_classes=10, use_sigmoid_ce=True, use_fed_loss=True,
        get_fed_loss_cls_weights=lambda: weights, fed_loss_num_classes=5,
    )
    assert torch.equal(p.fed_loss_cls_weights, weights)
    assert "fed_loss_cls_weights" in p.state_dict()
    torch.manual_seed(0)
    for _ in range(5):
        classes = p.get_fed_loss_classes(torch.tensor([3, 1, 10, 3]), 5, 10, weights)
        assert len(classes) == 5 and len(set(classes.tolist())) == 5
        assert {1, 3} <= set(classes.tolist()) and 10 not in classes.tolist()[3:]
    many = p.get_fed_loss_classes(torch.arange(8), 5, 10, weights)
    assert sorted(many.tolist()) == list(range(8))

    # With as many fed classes as gt classes, the loss only counts the gt classes' columns.
    only_gt = _predictor(
        num_classes=4, use_sigmoid_ce=True, use_fed_loss=True,
        get_fed_loss_cls_weights=lambda: torch.ones(4), fed_loss_num_classes=2,
    )
    scores = torch.randn(3, 5)
    gt = torch.tensor([0, 2, 4])
    loss = only_gt.sigmoid_cross_entropy_loss(scores, gt)
    target = F.one_hot(gt, 5).float()[:, :4]
    per = F.binary_cross_entropy_with_logits(scores[:, :4], target, reduction="none")
    # unique gt = {0, 2, 4}: 3 >= 2 classes, so exactly {0, 2, 4} are used; 4 is background.
    assert loss.item() == pytest.approx(per[:, [0, 2]].sum().item() / 3, rel=1e-5)

    with pytest.raises(ValueError, match="use_sigmoid_ce"):
        _predictor(use_fed_loss=True, get_fed_loss_cls_weights=lambda: torch.ones(2))
    with pytest.raises(ValueError, match="class weights"):
        _predictor(use_sigmoid_ce=True, use_fed_loss=True, get_fed_loss_cls_weights=lambda: torch.ones(3))


def test_losses_without_proposals_and_without_gt_boxes():
    p = _predictor()
    scores = torch.zeros(0, 3, requires_grad=True)
    deltas = torch.zeros(0, 8, requires_grad=True)
    with EventStorage():
        losses = p.losses((scores, deltas), [])
    assert all(v.item() == 0 for v in losses.values())
    sum(losses.values()).backward()

    bg_only = Instances((20, 20))
    bg_only.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 5, 5]]))
    bg_only.gt_classes = torch.tensor([2])  # no gt_boxes field: an image without gt
    with EventStorage():
        losses = p.losses((torch.zeros(1, 3), torch.zeros(1, 8)), [bg_only])
    assert losses["loss_box_reg"].item() == 0
    assert losses["loss_cls"].item() == pytest.approx(math.log(3), rel=1e-6)

    no_gt_classes = Instances((20, 20))
    no_gt_classes.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 5, 5]]))
    with EventStorage(), pytest.raises(ValueError, match="gt_classes"):
        p.losses((torch.zeros(1, 3), torch.zeros(1, 8)), [no_gt_classes])


def test_log_classification_stats():
    scores = torch.tensor([[5.0, 0, 0], [0, 0, 5.0], [0, 0, 5.0]])
    with EventStorage() as storage:
        _log_classification_stats(scores, torch.tensor([0, 1, 2]))
        _log_classification_stats(scores[:0], torch.tensor([], dtype=torch.int64), prefix="empty")
        latest = {k: v[0] for k, v in storage.latest().items()}
    assert latest == pytest.approx(
        {"fast_rcnn/cls_accuracy": 2 / 3, "fast_rcnn/fg_cls_accuracy": 0.5, "fast_rcnn/false_negative": 0.5}
    )


# ---------------------------------------------------------------- prediction / inference


def test_predict_boxes_probs_and_gt_class_boxes():
    p = _predictor(num_classes=2)
    props = _proposals_for_loss()
    deltas = torch.zeros(3, 8)
    deltas[0, 4:] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # class 1 of RoI 0 moves right by 1 px
    scores = torch.randn(3, 3)
    boxes = p.predict_boxes((scores, deltas), props)[0]
    assert boxes.shape == (3, 8)
    torch.testing.assert_close(boxes[:, :4], props[0].proposal_boxes.tensor)
    torch.testing.assert_close(boxes[0, 4:], torch.tensor([1.0, 0.0, 11.0, 10.0]))
    probs = p.predict_probs((scores, deltas), props)[0]
    torch.testing.assert_close(probs.sum(1), torch.ones(3))

    props[0].gt_classes = torch.tensor([1, 0, 2])  # background clamps to the last class
    per_gt = p.predict_boxes_for_gt_classes((scores, deltas), props)[0]
    torch.testing.assert_close(per_gt, torch.stack([boxes[0, 4:], boxes[1, :4], boxes[2, 4:]]))
    assert p.predict_boxes((scores, deltas), []) == []
    assert p.predict_boxes_for_gt_classes((scores, deltas), []) == []
    with pytest.raises(ValueError, match="box predictions"):
        p.predict_boxes((scores, deltas[:2]), props)


def _inference_case(device="cpu"):
    scores = torch.tensor(
        [[0.9, 0.07, 0.03], [0.8, 0.15, 0.05], [0.02, 0.6, 0.38], [0.5, 0.4, 0.1]], device=device
    )
    boxes = torch.tensor(
        [
            [0, 0, 10, 10, 30, 30, 40, 40],
            [1, 1, 11, 11, 0, 0, 10, 10],  # class 0 overlaps row 0's (IoU 0.68): suppressed
            [0, 0, 5, 5, 50, 40, 70, 60],  # class 1 is clipped to the 60 x 50 image
            [0, 0, float("nan"), 10, 0, 0, 10, 10],  # non-finite: dropped
        ],
        device=device,
    )
    return boxes, scores


def test_inference_single_image_hand_case():
    boxes, scores = _inference_case()
    result, inds = fast_rcnn_inference_single_image(boxes, scores, (50, 60), 0.05, 0.5, -1)
    torch.testing.assert_close(result.scores, torch.tensor([0.9, 0.6, 0.15, 0.07]))
    assert result.pred_classes.tolist() == [0, 1, 1, 1]
    assert inds.tolist() == [0, 2, 1, 0]
    torch.testing.assert_close(
        result.pred_boxes.tensor,
        torch.tensor([[0.0, 0, 10, 10], [50, 40, 60, 50], [0, 0, 10, 10], [30, 30, 40, 40]]),
    )
    assert result.image_size == (50, 60)
    top2, _ = fast_rcnn_inference_single_image(boxes, scores, (50, 60), 0.05, 0.5, 2)
    assert top2.scores.tolist() == pytest.approx([0.9, 0.6])
    strict, _ = fast_rcnn_inference_single_image(boxes, scores, (50, 60), 0.7, 0.5, -1)
    assert len(strict) == 1


def test_inference_class_agnostic_and_empty():
    scores = torch.tensor([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1]])
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    result, inds = fast_rcnn_inference_single_image(boxes, scores, (40, 40), 0.2, 0.5, 100)
    assert sorted(zip(inds.tolist(), result.pred_classes.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    empty, inds = fast_rcnn_inference_single_image(torch.zeros(0, 4), torch.zeros(0, 3), (40, 40), 0.2, 0.5, 100)
    assert len(empty) == 0 and inds.numel() == 0
    assert empty.pred_boxes.tensor.shape == (0, 4)


def test_fast_rcnn_inference_batch_and_bad_input():
    boxes, scores = _inference_case()
    results, inds = fast_rcnn_inference([boxes, boxes[:2]], [scores, scores[:2]], [(50, 60), (50, 60)], 0.05, 0.5, 100)
    assert [len(r) for r in results] == [4, 3]
    with pytest.raises(ValueError, match="one entry per image"):
        fast_rcnn_inference([boxes], [scores, scores], [(50, 60)], 0.05, 0.5, 100)
    with pytest.raises(ValueError, match="rows"):
        fast_rcnn_inference_single_image(boxes[:2], scores, (50, 60), 0.05, 0.5, 100)
    with pytest.raises(ValueError, match="'boxes' must have shape"):
        fast_rcnn_inference_single_image(boxes[:, :6], scores, (50, 60), 0.05, 0.5, 100)
    with pytest.raises(ValueError, match="2-D"):
        fast_rcnn_inference_single_image(boxes[None], scores, (50, 60), 0.05, 0.5, 100)
    with pytest.raises(TypeError, match="floating-point"):
        fast_rcnn_inference_single_image(boxes.long(), scores, (50, 60), 0.05, 0.5, 100)


def test_predictor_inference_end_to_end():
    torch.manual_seed(0)
    p = _predictor(num_classes=2, test_score_thresh=0.0, test_topk_per_image=3)
    props = _proposals_for_loss()
    results, inds = p.inference(p(torch.randn(3, 4)), props)
    assert len(results) == 1 and len(results[0]) == 3
    assert set(results[0].get_fields()) == {"pred_boxes", "scores", "pred_classes"}
    assert (results[0].scores[:-1] >= results[0].scores[1:]).all()


def test_inference_non_contiguous_inputs():
    boxes, scores = _inference_case()
    strided = torch.stack([boxes, boxes], dim=2)[..., 0]
    assert not strided.is_contiguous()
    a, ia = fast_rcnn_inference_single_image(boxes, scores, (50, 60), 0.05, 0.5, -1)
    scores_nc = scores.t().contiguous().t()
    assert not scores_nc.is_contiguous()
    b, ib = fast_rcnn_inference_single_image(strided, scores_nc, (50, 60), 0.05, 0.5, -1)
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    assert torch.equal(ia, ib)


@pytest.mark.cuda
def test_inference_cuda_matches_cpu():
    boxes, scores = _inference_case()
    cpu, cpu_inds = fast_rcnn_inference_single_image(boxes, scores, (50, 60), 0.05, 0.5, -1)
    gpu, gpu_inds = fast_rcnn_inference_single_image(boxes.cuda(), scores.cuda(), (50, 60), 0.05, 0.5, -1)
    assert gpu.pred_boxes.device.type == "cuda"
    torch.testing.assert_close(gpu.pred_boxes.tensor.cpu(), cpu.pred_boxes.tensor)
    torch.testing.assert_close(gpu.scores.cpu(), cpu.scores)
    assert torch.equal(gpu_inds.cpu(), cpu_inds)
    with pytest.raises(ValueError, match="is on"):
        fast_rcnn_inference_single_image(boxes.cuda(), scores, (50, 60), 0.05, 0.5, -1)


def test_losses_on_device(device):
    torch.manual_seed(0)
    p = _predictor(num_classes=2).to(device)
    props = _proposals_for_loss(device)
    x = torch.randn(3, 4, device=device, requires_grad=True)
    with EventStorage():
        losses = p.losses(p(x), props)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert x.grad.device.type == device.type and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_inference_other_float_dtypes(dtype):
    boxes, scores = _inference_case()
    ref, ref_inds = fast_rcnn_inference_single_image(boxes, scores, (50, 60), 0.05, 0.5, -1)
    out, inds = fast_rcnn_inference_single_image(boxes.to(dtype), scores.to(dtype), (50, 60), 0.05, 0.5, -1)
    assert out.scores.dtype == dtype and torch.equal(inds, ref_inds)
    torch.testing.assert_close(out.pred_boxes.tensor, ref.pred_boxes.tensor)


def test_fed_loss_weights_from_config():
    """USE_FED_LOSS reads the class image counts of DATASETS.TRAIN from the metadata."""
    from detectron2.data import MetadataCatalog

    name = "_roi_heads_test_fed_loss_dataset"
    counts = [{"id": 2, "image_count": 9}, {"id": 1, "image_count": 4}, {"id": 3, "image_count": 16}]
    MetadataCatalog.get(name).set(class_image_count=counts)
    try:
        cfg = get_cfg()
        cfg.DATASETS.TRAIN = (name,)
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
        cfg.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE = True
        cfg.MODEL.ROI_BOX_HEAD.USE_FED_LOSS = True
        cfg.MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES = 2
        p = FastRCNNOutputLayers(cfg, ShapeSpec(channels=4))
    finally:
        MetadataCatalog.remove(name)
    torch.testing.assert_close(p.fed_loss_cls_weights, torch.tensor([2.0, 3.0, 4.0]))  # counts ** 0.5, by id
    assert p.fed_loss_num_classes == 2 and p.use_sigmoid_ce
    with EventStorage():
        losses = p.losses((torch.randn(3, 4), torch.zeros(3, 12)), _proposals_for_loss_k3())
    assert torch.isfinite(losses["loss_cls"])


def _proposals_for_loss_k3():
    inst = _proposals_for_loss()[0]
    inst.gt_classes = torch.tensor([0, 1, 3])
    return [inst]

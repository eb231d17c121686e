import math

import pytest
import torch
from torch import nn
from rcnn_toys import ToyBackbone, toy_cfg, toy_instances
from rpn_reference import reference_find_top_rpn_proposals

from detectron2.layers import ShapeSpec
from detectron2.modeling import build_anchor_generator
from detectron2.modeling.proposal_generator import (
    PROPOSAL_GENERATOR_REGISTRY,
    RPN,
    StandardRPNHead,
    build_proposal_generator,
    build_rpn_head,
)
from detectron2.modeling.proposal_generator.proposal_utils import (
    add_ground_truth_to_proposals,
    find_top_rpn_proposals,
)
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage

SHAPES = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}


def _rpn(cfg=None, training=True):
    torch.manual_seed(0)
    rpn = RPN(cfg or toy_cfg(), SHAPES)
    return rpn.train(training)


def _features(n=2, h=16, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"p2": torch.randn(n, 8, h, w, generator=g), "p3": torch.randn(n, 8, h // 2, w // 2, generator=g)}


def _images(sizes=((64, 80), (56, 48))):
    return ImageList(torch.zeros(len(sizes), 3, 64, 80), list(sizes))


# --- StandardRPNHead ---------------------------------------------------------------


def test_head_state_dict_keys_match_upstream():
    head = build_rpn_head(toy_cfg(), list(SHAPES.values()))
    assert isinstance(head, StandardRPNHead)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "conv.weight": (8, 8, 3, 3),
        "conv.bias": (8,),
        "objectness_logits.weight": (3, 8, 1, 1),
        "objectness_logits.bias": (3,),
        "anchor_deltas.weight": (12, 8, 1, 1),
        "anchor_deltas.bias": (12,),
    }


def test_head_several_convs():
    cfg = toy_cfg()
    cfg.MODEL.RPN.CONV_DIMS = [16, -1]
    head = build_rpn_head(cfg, list(SHAPES.values()))
    keys = set(head.state_dict().keys())
    assert {"conv.conv0.weight", "conv.conv1.weight", "conv.conv1.bias"} <= keys
    assert head.conv.conv0.weight.shape == (16, 8, 3, 3)
    assert head.conv.conv1.weight.shape == (16, 16, 3, 3)
    assert head.objectness_logits.weight.shape == (3, 16, 1, 1)


def test_head_output_shapes_and_init():
    head = StandardRPNHead(in_channels=8, num_anchors=3, box_dim=4)
    feats = list(_features().values())
    logits, deltas = head(feats)
    assert [tuple(x.shape) for x in logits] == [(2, 3, 16, 20), (2, 3, 8, 10)]
    assert [tuple(x.shape) for x in deltas] == [(2, 12, 16, 20), (2, 12, 8, 10)]
    assert float(head.objectness_logits.bias.detach().abs().sum()) == 0.0
    assert float(head.conv.weight.std()) < 0.05


def test_head_bad_input():
    with pytest.raises(ValueError, match="conv_dims"):
        StandardRPNHead(in_channels=8, num_anchors=3, conv_dims=[0])
    head = StandardRPNHead(in_channels=8, num_anchors=3)
    with pytest.raises(ValueError, match=r"features\[0\]"):
        head([torch.zeros(8, 4, 4)])
    with pytest.raises(TypeError, match="features"):
        head(torch.zeros(1, 8, 4, 4))
    with pytest.raises(ValueError, match="same channels"):
        StandardRPNHead(toy_cfg(), [ShapeSpec(channels=8, stride=4), ShapeSpec(channels=4, stride=8)])


# --- RPN construction --------------------------------------------------------------


def test_from_config_reads_every_key():
    cfg = toy_cfg()
    rpn_cfg = cfg.MODEL.RPN
    rpn_cfg.NMS_THRESH = 0.6
    rpn_cfg.BATCH_SIZE_PER_IMAGE = 64
    rpn_cfg.POSITIVE_FRACTION = 0.25
    rpn_cfg.SMOOTH_L1_BETA = 0.1
    rpn_cfg.LOSS_WEIGHT = 2.0
    rpn_cfg.BBOX_REG_LOSS_WEIGHT = 3.0
    rpn_cfg.BBOX_REG_LOSS_TYPE = "giou"
    rpn_cfg.BOUNDARY_THRESH = 5
    rpn_cfg.IOU_THRESHOLDS = [0.2, 0.8]
    rpn_cfg.IOU_LABELS = [0, -1, 1]
    rpn_cfg.BBOX_REG_WEIGHTS = (2.0, 2.0, 1.0, 1.0)
    cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 3
    rpn = RPN(cfg, SHAPES)
    assert rpn.in_features == ["p2", "p3"]
    assert rpn.nms_thresh == 0.6
    assert rpn.batch_size_per_image == 64
    assert rpn.positive_fraction == 0.25
    assert rpn.smooth_l1_beta == 0.1
    assert rpn.loss_weight == {"loss_rpn_cls": 2.0, "loss_rpn_loc": 6.0}
    assert rpn.box_reg_loss_type == "giou"
    assert rpn.anchor_boundary_thresh == 5
    assert rpn.anchor_matcher.thresholds[1:-1] == [0.2, 0.8]
    assert rpn.anchor_matcher.labels == [0, -1, 1]
    assert rpn.anchor_matcher.allow_low_quality_matches
    assert tuple(rpn.box2box_transform.weights) == (2.0, 2.0, 1.0, 1.0)
    assert rpn.pre_nms_topk == {True: 200, False: 100}
    assert rpn.post_nms_topk == {True: 50, False: 30}
    assert rpn.min_box_size == 3.0


def test_state_dict_keys_match_upstream():
    keys = set(_rpn().state_dict().keys())
    assert keys == {
        "rpn_head.conv.weight",
        "rpn_head.conv.bias",
        "rpn_head.objectness_logits.weight",
        "rpn_head.objectness_logits.bias",
        "rpn_head.anchor_deltas.weight",
        "rpn_head.anchor_deltas.bias",
    }


def test_build_proposal_generator():
    cfg = toy_cfg()
    assert isinstance(build_proposal_generator(cfg, SHAPES), RPN)
    assert "RPN" in PROPOSAL_GENERATOR_REGISTRY and "RRPN" in PROPOSAL_GENERATOR_REGISTRY
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "PrecomputedProposals"
    assert build_proposal_generator(cfg, SHAPES) is None


def test_bad_configuration():
    cfg = toy_cfg()
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p9"]
    with pytest.raises(ValueError, match="p9"):
        RPN(cfg, SHAPES)
    cfg = toy_cfg()
    cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE = "l2"
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        RPN(cfg, SHAPES)


# --- RPN forward -------------------------------------------------------------------


def _gt():
    return [toy_instances((64, 80)), toy_instances((56, 48), boxes=((4.0, 4.0, 30.0, 40.0),))]


@pytest.mark.parametrize("loss_type", ["smooth_l1", "giou", "diou", "ciou"])
def test_training_losses_finite_and_differentiable(loss_type):
    cfg = toy_cfg()
    cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE = loss_type
    rpn = _rpn(cfg)
    with EventStorage() as storage:
        proposals, losses = rpn(_images(), _features(), _gt())
        assert storage.latest()["rpn/num_pos_anchors"][0] > 0
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert losses["loss_rpn_loc"].item() > 0
    sum(losses.values()).backward()
    head = rpn.rpn_head
    for p in (head.conv.weight, head.objectness_logits.weight, head.anchor_deltas.weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert len(proposals) == 2
    assert all(len(p) <= 50 for p in proposals)
    assert not proposals[0].proposal_boxes.tensor.requires_grad


def _single_anchor_rpn(loss_weight=2.0, reg_weight=3.0, loss_type="smooth_l1"):
    """One level, one anchor (32x32) per position, stride 16, offset 0: on a 2x2 map
    the anchors are centred at (0, 0), (16, 0), (0, 16), (16, 16)."""
    cfg = toy_cfg()
    cfg.MODEL.RPN.IN_FEATURES = ["p3"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[1.0]]
    cfg.MODEL.RPN.LOSS_WEIGHT = loss_weight
    cfg.MODEL.RPN.BBOX_REG_LOSS_WEIGHT = reg_weight
    cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE = loss_type
    rpn = RPN(cfg, {"p3": ShapeSpec(channels=8, stride=16)}).train()
    head = rpn.rpn_head
    with torch.no_grad():
        for m in (head.conv, head.objectness_logits, head.anchor_deltas):
            m.weight.zero_()
            m.bias.zero_()
        head.objectness_logits.bias.fill_(0.5)
        head.anchor_deltas.bias.copy_(torch.tensor([0.1, 0.0, 0.0, -0.2]))
    return rpn


def test_losses_on_a_hand_made_case():
    rpn = _single_anchor_rpn()
    gt = Instances((32, 32), gt_boxes=Boxes(torch.tensor([[-16.0, -16.0, 16.0, 16.0]])))
    images = ImageList(torch.zeros(1, 3, 32, 32), [(32, 32)])
    feats = {"p3": torch.zeros(1, 8, 2, 2)}
    anchors = rpn.anchor_generator([feats["p3"]])
    labels, matched = rpn.label_and_sample_anchors(anchors, [gt])
    # IoU with the ground truth: 1 (positive), 1/3, 1/3 (ignored), 1/7 (negative).
    assert labels[0].tolist() == [1, -1, -1, 0]
    assert torch.equal(matched[0][0], gt.gt_boxes.tensor[0])
    with EventStorage():
        _, losses = rpn(images, feats, [gt])
    bce_pos = math.log1p(math.exp(-0.5))
    bce_neg = math.log1p(math.exp(0.5))
    normalizer = 256 * 1
    assert losses["loss_rpn_cls"].item() == pytest.approx(2.0 * (bce_pos + bce_neg) / normalizer, rel=1e-5)
    # L1 (beta 0) of the predicted deltas against zero targets, on the one positive.
    assert losses["loss_rpn_loc"].item() == pytest.approx(6.0 * 0.3 / normalizer, rel=1e-5)


def test_giou_loss_is_zero_for_a_perfect_box():
    rpn = _single_anchor_rpn(loss_weight=1.0, reg_weight=1.0, loss_type="giou")
    with torch.no_grad():
        rpn.rpn_head.anchor_deltas.bias.zero_()
    gt = Instances((32, 32), gt_boxes=Boxes(torch.tensor([[-16.0, -16.0, 16.0, 16.0]])))
    images = ImageList(torch.zeros(1, 3, 32, 32), [(32, 32)])
    with EventStorage():
        _, losses = rpn(images, {"p3": torch.zeros(1, 8, 2, 2)}, [gt])
    assert losses["loss_rpn_loc"].item() == pytest.approx(0.0, abs=1e-6)


def test_label_and_sample_anchors():
    cfg = toy_cfg()
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POSITIVE_FRACTION = 0.25
    rpn = _rpn(cfg)
    anchors = rpn.anchor_generator(list(_features().values()))
    empty = Instances((56, 48), gt_boxes=Boxes(torch.zeros(0, 4)))
    labels, matched = rpn.label_and_sample_anchors(anchors, [toy_instances((64, 80)), empty])
    total = sum(len(a) for a in anchors)
    assert [tuple(x.shape) for x in labels] == [(total,), (total,)]
    assert [tuple(x.shape) for x in matched] == [(total, 4), (total, 4)]
    for lab in labels:
        assert set(lab.unique().tolist()) <= {-1, 0, 1}
        assert int((lab >= 0).sum()) <= 32
        assert int((lab == 1).sum()) <= 8
    assert int((labels[0] == 1).sum()) > 0
    assert int((labels[1] == 1).sum()) == 0 and int((labels[1] == 0).sum()) == 32
    assert float(matched[1].abs().sum()) == 0.0


def test_boundary_threshold_ignores_outside_anchors():
    cfg = toy_cfg()
    cfg.MODEL.RPN.BOUNDARY_THRESH = 0
    cfg.MODEL.RPN.BATCH_SIZE_PER_IMAGE = 100000
    rpn = _rpn(cfg)
    anchors = rpn.anchor_generator(list(_features().values()))
    labels, _ = rpn.label_and_sample_anchors(anchors, [toy_instances((64, 80))])
    outside = ~Boxes.cat(anchors).inside_box((64, 80), 0)
    assert outside.any()
    assert (labels[0][outside] == -1).all()
    assert (labels[0][~outside] >= 0).any()


def test_inference_proposals_sorted_and_bounded():
    rpn = _rpn(training=False)
    proposals, losses = rpn(_images(), _features())
    assert losses == {}
    for p, (h, w) in zip(proposals, [(64, 80), (56, 48)]):
        assert p.image_size == (h, w)
        assert 0 < len(p) <= 30
        logits = p.objectness_logits
        assert torch.all(logits[:-1] >= logits[1:])
        boxes = p.proposal_boxes.tensor
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= h).all()
        assert p.proposal_boxes.nonempty().all()


def test_train_and_test_top_k_differ():
    cfg = toy_cfg()
    cfg.MODEL.RPN.NMS_THRESH = 1.0  # keeps everything but exact duplicates
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 70
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 20
    rpn = _rpn(cfg)
    with EventStorage():
        train_props, _ = rpn(_images(), _features(), _gt())
    rpn.eval()
    test_props, _ = rpn(_images(), _features())
    assert [len(p) for p in train_props] == [70, 70]
    assert [len(p) for p in test_props] == [20, 20]


def test_forward_bad_input():
    rpn = _rpn()
    with pytest.raises(ValueError, match="gt_instances"):
        rpn(_images(), _features(), None)
    with pytest.raises(ValueError, match="gt_instances"):
        rpn(_images(), _features(), _gt()[:1])
    with pytest.raises(KeyError, match="p3"):
        rpn(_images(), {"p2": _features()["p2"]})


def test_non_contiguous_features_give_the_same_proposals():
    rpn = _rpn(training=False)
    feats = _features()
    strided = {k: v.transpose(2, 3).contiguous().transpose(2, 3) for k, v in feats.items()}
    assert not strided["p2"].is_contiguous()
    a, _ = rpn(_images(), feats)
    b, _ = rpn(_images(), strided)
    for x, y in zip(a, b):
        torch.testing.assert_close(x.proposal_boxes.tensor, y.proposal_boxes.tensor)
        torch.testing.assert_close(x.objectness_logits, y.objectness_logits)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_decode_of_all_levels_equals_decode_per_level(dtype):
    rpn = _rpn()
    feats = _features(n=3)
    anchors = rpn.anchor_generator(list(feats.values()))
    g = torch.Generator().manual_seed(2)
    deltas = [torch.randn(3, len(a), 4, generator=g).to(dtype) for a in anchors]
    decoded = rpn._decode_proposals(anchors, deltas)
    assert [tuple(d.shape) for d in decoded] == [(3, len(a), 4) for a in anchors]
    for a, d, out in zip(anchors, deltas, decoded):
        expected = rpn.box2box_transform.apply_deltas(d.reshape(-1, 4), a.tensor.repeat(3, 1)).view(3, -1, 4)
        assert out.dtype == expected.dtype == torch.float32 and torch.equal(out, expected)


# --- find_top_rpn_proposals --------------------------------------------------------


def _grid_boxes(n: int, offset: float = 0.0) -> torch.Tensor:
    """n non-overlapping 8x8 boxes in a row of a 1000-wide image."""
    x0 = torch.arange(n, dtype=torch.float32) * 10 + offset
    return torch.stack([x0, torch.full_like(x0, 2), x0 + 8, torch.full_like(x0, 10)], dim=1)


def test_find_top_keeps_top_k_per_level_then_post_top_k():
    boxes = [_grid_boxes(6)[None], _grid_boxes(6, offset=100)[None]]
    scores = [torch.tensor([[6.0, 5, 4, 3, 2, 1]]), torch.tensor([[0.6, 0.5, 0.4, 0.3, 0.2, 0.1]])]
    (res,) = find_top_rpn_proposals(boxes, scores, [(20, 1000)], 0.7, 3, 100, 0.0, False)
    assert res.objectness_logits.tolist() == pytest.approx([6, 5, 4, 0.6, 0.5, 0.4])
    (res,) = find_top_rpn_proposals(boxes, scores, [(20, 1000)], 0.7, 3, 4, 0.0, False)
    assert res.objectness_logits.tolist() == pytest.approx([6, 5, 4, 0.6])
    assert isinstance(res.proposal_boxes, Boxes)


def test_find_top_nms_only_within_a_level():
    box = torch.tensor([[10.0, 10.0, 30.0, 30.0], [11.0, 10.0, 31.0, 30.0]])
    boxes = [box[None], box[None]]
    scores = [torch.tensor([[2.0, 1.0]]), torch.tensor([[1.5, 0.5]])]
    (res,) = find_top_rpn_proposals(boxes, scores, [(50, 50)], 0.5, 10, 10, 0.0, False)
    # The overlapping box loses to its level-mate, not to the other level's box.
    assert res.objectness_logits.tolist() == [2.0, 1.5]


def test_find_top_clips_and_drops_small_boxes():
    boxes = torch.tensor([[[-5.0, -5.0, 20.0, 20.0], [10.0, 10.0, 12.0, 30.0], [30.0, 30.0, 90.0, 90.0]]])
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    (res,) = find_top_rpn_proposals([boxes], [scores], [(40, 50)], 0.7, 10, 10, 2.5, False)
    assert res.proposal_boxes.tensor.tolist() == [[0.0, 0.0, 20.0, 20.0], [30.0, 30.0, 50.0, 40.0]]
    assert res.objectness_logits.tolist() == [3.0, 1.0]


def test_find_top_non_finite():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [float("nan"), 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]])
    scores = torch.tensor([[1.0, 2.0, float("inf")]])
    with pytest.raises(FloatingPointError, match="diverged"):
        find_top_rpn_proposals([boxes], [scores], [(40, 40)], 0.7, 10, 10, 0.0, True)
    (res,) = find_top_rpn_proposals([boxes], [scores], [(40, 40)], 0.7, 10, 10, 0.0, False)
    assert res.proposal_boxes.tensor.tolist() == [[0.0, 0.0, 10.0, 10.0]]


def test_find_top_bad_input():
    boxes, scores = torch.zeros(2, 5, 4), torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"proposals\[0\]"):
        find_top_rpn_proposals([torch.zeros(2, 5, 5)], [scores], [(9, 9)] * 2, 0.7, 10, 10, 0.0, False)
    with pytest.raises(ValueError, match=r"pred_objectness_logits\[0\]"):
        find_top_rpn_proposals([boxes], [torch.zeros(2, 4)], [(9, 9)] * 2, 0.7, 10, 10, 0.0, False)
    with pytest.raises(ValueError, match="image_sizes"):
        find_top_rpn_proposals([boxes], [scores], [(9, 9)], 0.7, 10, 10, 0.0, False)
    with pytest.raises(ValueError, match="one entry per feature level"):
        find_top_rpn_proposals([boxes, boxes], [scores], [(9, 9)] * 2, 0.7, 10, 10, 0.0, False)
    with pytest.raises(TypeError, match="lists"):
        find_top_rpn_proposals(boxes, scores, [(9, 9)] * 2, 0.7, 10, 10, 0.0, False)


def _random_level(n, hwa, size, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, hwa, 2, generator=g) * size
    wh = torch.rand(n, hwa, 2, generator=g) * size / 3 + 0.5
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], dim=2)
    return boxes, torch.randn(n, hwa, generator=g)


@pytest.mark.parametrize("min_size", [0.0, 4.0])
def test_find_top_matches_reference(min_size):
    levels = [_random_level(2, hwa, 100, seed) for seed, hwa in enumerate([900, 300, 60])]
    proposals, logits = [b for b, _ in levels], [s for _, s in levels]
    sizes = [(100, 90), (80, 100)]
    ours = find_top_rpn_proposals(proposals, logits, sizes, 0.6, 200, 150, min_size, True)
    ref = reference_find_top_rpn_proposals(proposals, logits, sizes, 0.6, 200, 150, min_size, True)
    for res, (boxes, scores) in zip(ours, ref):
        torch.testing.assert_close(res.proposal_boxes.tensor, boxes)
        torch.testing.assert_close(res.objectness_logits, scores)


def test_find_top_half_precision_logits():
    boxes, scores = _random_level(2, 300, 100, seed=4)
    ref = find_top_rpn_proposals([boxes], [scores.half().float()], [(100, 100)] * 2, 0.7, 100, 50, 0.0, False)
    half = find_top_rpn_proposals([boxes], [scores.half()], [(100, 100)] * 2, 0.7, 100, 50, 0.0, False)
    for a, b in zip(ref, half):
        assert b.objectness_logits.dtype == torch.float16
        assert torch.equal(a.proposal_boxes.tensor, b.proposal_boxes.tensor)


def test_find_top_non_contiguous_inputs():
    boxes, scores = _random_level(2, 300, 100, seed=3)
    strided_boxes = boxes.transpose(0, 1).contiguous().transpose(0, 1)
    strided_scores = scores.t().contiguous().t()
    assert not strided_boxes.is_contiguous() and not strided_scores.is_contiguous()
    a = find_top_rpn_proposals([boxes], [scores], [(100, 100)] * 2, 0.7, 100, 50, 0.0, False)
    b = find_top_rpn_proposals([strided_boxes], [strided_scores], [(100, 100)] * 2, 0.7, 100, 50, 0.0, False)
    for x, y in zip(a, b):
        assert torch.equal(x.proposal_boxes.tensor, y.proposal_boxes.tensor)


# --- add_ground_truth_to_proposals -------------------------------------------------


def _proposals(n=3):
    p = Instances((50, 60))
    p.proposal_boxes = Boxes(_grid_boxes(n))
    p.objectness_logits = torch.arange(n, dtype=torch.float32)
    return p


def test_add_ground_truth_to_proposals():
    gt = toy_instances((50, 60))
    (res,) = add_ground_truth_to_proposals([gt], [_proposals()])
    assert len(res) == 5
    assert set(res.get_fields()) == {"proposal_boxes", "objectness_logits"}
    assert torch.equal(res.proposal_boxes.tensor[3:], gt.gt_boxes.tensor)
    # The logit of a probability of 1 - 1e-10.
    assert res.objectness_logits[3:].tolist() == pytest.approx([23.0258, 23.0258], rel=1e-4)
    (res,) = add_ground_truth_to_proposals([gt.gt_boxes], [_proposals()])
    assert len(res) == 5


def test_add_ground_truth_carries_shared_fields_and_checks_input():
    gt = toy_instances((50, 60))
    props = _proposals()
    props.gt_classes = torch.full((3,), 7)
    (res,) = add_ground_truth_to_proposals([gt], [props])
    assert res.gt_classes.tolist() == [7, 7, 7, 0, 0]
    props.other = torch.zeros(3)
    with pytest.raises(ValueError, match="other"):
        add_ground_truth_to_proposals([gt], [props])
    with pytest.raises(ValueError, match="2 images"):
        add_ground_truth_to_proposals([gt], [_proposals(), _proposals()])
    with pytest.raises(ValueError, match="None"):
        add_ground_truth_to_proposals(None, [_proposals()])


# --- CUDA --------------------------------------------------------------------------


@pytest.mark.cuda
def test_rpn_cuda_matches_cpu():
    # float64: no TF32 convolutions, so both devices make the same top-k and NMS choices.
    rpn = _rpn(training=False).double()
    feats = {k: v.double() for k, v in _features().items()}
    cpu, _ = rpn(_images(), feats)
    rpn_cuda = rpn.to("cuda")
    gpu, _ = rpn_cuda(_images().to("cuda"), {k: v.cuda() for k, v in feats.items()})
    for a, b in zip(cpu, gpu):
        assert b.proposal_boxes.device.type == "cuda"
        torch.testing.assert_close(b.proposal_boxes.tensor.cpu(), a.proposal_boxes.tensor, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(b.objectness_logits.cpu(), a.objectness_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.cuda
def test_rpn_cuda_training_losses():
    rpn = _rpn().to("cuda")
    feats = {k: v.cuda().requires_grad_() for k, v in _features().items()}
    with EventStorage():
        _, losses = rpn(_images().to("cuda"), feats, [g.to("cuda") for g in _gt()])
    assert all(v.device.type == "cuda" and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert torch.isfinite(feats["p2"].grad).all()


@pytest.mark.cuda
def test_find_top_cuda_matches_reference():
    levels = [_random_level(2, hwa, 100, seed) for seed, hwa in enumerate([900, 300])]
    proposals, logits = [b.cuda() for b, _ in levels], [s.cuda() for _, s in levels]
    sizes = [(100, 90), (80, 100)]
    ours = find_top_rpn_proposals(proposals, logits, sizes, 0.6, 200, 150, 0.0, False)
    ref = reference_find_top_rpn_proposals(
        [b for b, _ in levels], [s for _, s in levels], sizes, 0.6, 200, 150, 0.0, False
    )
    for res, (boxes, scores) in zip(ours, ref):
        torch.testing.assert_close(res.proposal_boxes.tensor.cpu(), boxes)
        torch.testing.assert_close(res.objectness_logits.cpu(), scores)
    with pytest.raises(ValueError, match="on cuda"):
        find_top_rpn_proposals([proposals[0]], [logits[0].cpu()], sizes, 0.6, 200, 150, 0.0, False)


def test_toy_backbone_is_consistent_with_shapes():
    # Guard for the fixtures above: SHAPES must describe ToyBackbone.
    assert ToyBackbone().output_shape() == SHAPES
    assert isinstance(build_anchor_generator(toy_cfg(), list(SHAPES.values())), nn.Module)

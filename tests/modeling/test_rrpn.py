import pytest
import torch
from rcnn_toys import toy_cfg

from detectron2.layers import ShapeSpec
from detectron2.modeling import Box2BoxTransformRotated, RotatedAnchorGenerator
from detectron2.modeling.proposal_generator import RRPN, build_proposal_generator
from detectron2.modeling.proposal_generator.proposal_utils import (
    add_ground_truth_to_proposals,
    find_top_rrpn_proposals,
)
from detectron2.structures import ImageList, Instances, RotatedBoxes
from detectron2.utils.events import EventStorage

SHAPES = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}


def _cfg():
    cfg = toy_cfg()
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.ANGLES = [[-60, 0, 60]]
    cfg.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
    return cfg


def _rrpn(cfg=None, training=True):
    torch.manual_seed(0)
    return build_proposal_generator(cfg or _cfg(), SHAPES).train(training)


def _features(n=2):
    g = torch.Generator().manual_seed(1)
    return {"p2": torch.randn(n, 8, 16, 20, generator=g), "p3": torch.randn(n, 8, 8, 10, generator=g)}


def _images():
    return ImageList(torch.zeros(2, 3, 64, 80), [(64, 80), (56, 48)])


def _gt():
    return [
        Instances((64, 80), gt_boxes=RotatedBoxes(torch.tensor([[30.0, 30.0, 30.0, 12.0, 30.0], [60.0, 20.0, 16.0, 16.0, 0.0]]))),
        Instances((56, 48), gt_boxes=RotatedBoxes(torch.tensor([[20.0, 30.0, 24.0, 10.0, -45.0]]))),
    ]


def test_rrpn_from_config():
    rrpn = _rrpn()
    assert isinstance(rrpn, RRPN)
    assert isinstance(rrpn.anchor_generator, RotatedAnchorGenerator)
    assert isinstance(rrpn.box2box_transform, Box2BoxTransformRotated)
    shapes = {k: tuple(v.shape) for k, v in rrpn.state_dict().items()}
    # 3 ratios x 3 angles = 9 anchors per position, 5 deltas each.
    assert shapes["rpn_head.objectness_logits.weight"] == (9, 8, 1, 1)
    assert shapes["rpn_head.anchor_deltas.weight"] == (45, 8, 1, 1)


def test_rrpn_training_losses():
    rrpn = _rrpn()
    with EventStorage():
        proposals, losses = rrpn(_images(), _features(), _gt())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_loc"].item() > 0
    sum(losses.values()).backward()
    assert rrpn.rpn_head.anchor_deltas.weight.grad.abs().sum() > 0
    assert all(isinstance(p.proposal_boxes, RotatedBoxes) and len(p) <= 50 for p in proposals)


def test_rrpn_labels_use_rotated_iou():
    rrpn = _rrpn()
    anchors = rrpn.anchor_generator(list(_features().values()))
    gt = _gt()[0]
    labels, matched = rrpn.label_and_sample_anchors(anchors, [gt])
    assert matched[0].shape == (sum(len(a) for a in anchors), 5)
    pos = labels[0] == 1
    assert pos.any()
    # Every positive anchor is matched to one of the two ground-truth boxes.
    assert all(any(torch.equal(m, g) for g in gt.gt_boxes.tensor) for m in matched[0][pos])


def test_rrpn_inference_sorted_and_bounded():
    rrpn = _rrpn(training=False)
    proposals, losses = rrpn(_images(), _features())
    assert losses == {}
    for p in proposals:
        assert isinstance(p.proposal_boxes, RotatedBoxes)
        assert 0 < len(p) <= 30
        logits = p.objectness_logits
        assert torch.all(logits[:-1] >= logits[1:])
        assert (p.proposal_boxes.tensor[:, 2:4] > 0).all()


def test_find_top_rrpn_nms_suppresses_rotated_overlaps():
    boxes = torch.tensor(
        [[[20.0, 20.0, 20.0, 10.0, 30.0], [20.5, 20.0, 20.0, 10.0, 32.0], [60.0, 60.0, 20.0, 10.0, 30.0]]]
    )
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    (res,) = find_top_rrpn_proposals([boxes], [scores], [(100, 100)], 0.5, 10, 10, 0.0, False)
    assert res.objectness_logits.tolist() == [3.0, 1.0]
    # In another level the near-duplicate survives: NMS is per level.
    (res,) = find_top_rrpn_proposals(
        [boxes[:, :1], boxes[:, 1:]], [scores[:, :1], scores[:, 1:]], [(100, 100)], 0.5, 10, 10, 0.0, False
    )
    assert res.objectness_logits.tolist() == [3.0, 2.0, 1.0]


def test_find_top_rrpn_top_k_min_size_and_non_finite():
    boxes = torch.tensor(
        [[[20.0, 20.0, 20.0, 10.0, 0.0], [50.0, 50.0, 1.0, 10.0, 45.0], [80.0, 20.0, 10.0, 10.0, 10.0], [10.0, 80.0, 8.0, 8.0, 0.0]]]
    )
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    (res,) = find_top_rrpn_proposals([boxes], [scores], [(100, 100)], 0.7, 3, 10, 2.0, False)
    assert res.objectness_logits.tolist() == [4.0, 2.0]  # 3.0 too thin, 1.0 beyond top-3
    bad = boxes.clone()
    bad[0, 0, 0] = float("inf")
    with pytest.raises(FloatingPointError):
        find_top_rrpn_proposals([bad], [scores], [(100, 100)], 0.7, 10, 10, 0.0, True)
    (res,) = find_top_rrpn_proposals([bad], [scores], [(100, 100)], 0.7, 10, 10, 0.0, False)
    assert res.objectness_logits.tolist() == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="5"):
        find_top_rrpn_proposals([boxes[..., :4]], [scores], [(100, 100)], 0.7, 10, 10, 0.0, False)


def test_add_rotated_ground_truth_to_proposals():
    props = Instances((64, 80))
    props.proposal_boxes = RotatedBoxes(torch.tensor([[10.0, 10.0, 5.0, 5.0, 0.0]]))
    props.objectness_logits = torch.tensor([0.5])
    (res,) = add_ground_truth_to_proposals([_gt()[0]], [props])
    assert isinstance(res.proposal_boxes, RotatedBoxes) and len(res) == 3


def test_rrpn_rejects_axis_aligned_options():
    cfg = _cfg()
    cfg.MODEL.RPN.BOUNDARY_THRESH = 0
    with pytest.raises(ValueError, match="anchor_boundary_thresh"):
        RRPN(cfg, SHAPES)
    cfg = _cfg()
    cfg.MODEL.RPN.BBOX_REG_LOSS_TYPE = "giou"
    with pytest.raises(ValueError, match="smooth_l1"):
        RRPN(cfg, SHAPES)
    with pytest.raises(ValueError, match="gt_instances"):
        _rrpn()(_images(), _features(), None)


@pytest.mark.cuda
def test_rrpn_cuda_matches_cpu():
    # float64: no TF32 convolutions, so both devices make the same top-k and NMS choices.
    rrpn = _rrpn(training=False).double()
    feats = {k: v.double() for k, v in _features().items()}
    cpu, _ = rrpn(_images(), feats)
    gpu, _ = rrpn.to("cuda")(_images().to("cuda"), {k: v.cuda() for k, v in feats.items()})
    for a, b in zip(cpu, gpu):
        assert len(a) == len(b)
        torch.testing.assert_close(b.proposal_boxes.tensor.cpu(), a.proposal_boxes.tensor, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(b.objectness_logits.cpu(), a.objectness_logits, atol=1e-4, rtol=1e-4)
    rrpn.train()
    with EventStorage():
        _, losses = rrpn(_images().to("cuda"), {k: v.cuda() for k, v in feats.items()}, [g.to("cuda") for g in _gt()])
    assert all(torch.isfinite(v) for v in losses.values())

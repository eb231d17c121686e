"""torch.jit.script of the building blocks (as upstream scripts them): scripted outputs
equal eager outputs on random inputs."""
from typing import List

import pytest
import torch
from torch import Tensor

from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.export.torchscript_patch import patch_instances
from detectron2.layers import ShapeSpec, nonzero_tuple  # noqa: F401  (resolved by TorchScript)
from detectron2.modeling import DefaultAnchorGenerator, Matcher, RotatedAnchorGenerator, build_backbone
from detectron2.modeling.backbone import build_resnet_backbone
from detectron2.modeling.box_regression import Box2BoxTransform, Box2BoxTransformRotated
from detectron2.modeling.proposal_generator import build_proposal_generator
from detectron2.structures import Boxes, ImageList
from detectron2.utils.testing import random_boxes


def _matcher(thresholds: List[float], labels: List[int]):
    return Matcher(thresholds, labels, allow_low_quality_matches=True)


def test_matcher_scripted_equals_eager():
    scripted = torch.jit.script(_matcher)([0.3, 0.7], [0, -1, 1])
    eager = _matcher([0.3, 0.7], [0, -1, 1])
    g = torch.Generator().manual_seed(0)
    for m, n in ((5, 40), (1, 7), (12, 3)):
        q = torch.rand(m, n, generator=g)
        q[0, : n // 2] = q[0].max()  # ties for the low-quality matches
        for a, b in zip(scripted(q), eager(q)):
            assert torch.equal(a, b)


def _decode(weights: List[float], deltas: Tensor, boxes: Tensor) -> Tensor:
    t = Box2BoxTransform(weights=(weights[0], weights[1], weights[2], weights[3]))
    return t.apply_deltas(deltas, boxes)


def _decode_rotated(deltas: Tensor, boxes: Tensor) -> Tensor:
    return Box2BoxTransformRotated(weights=(10.0, 10.0, 5.0, 5.0, 1.0)).apply_deltas(deltas, boxes)


def test_box_transforms_scripted_equal_eager():
    torch.manual_seed(0)
    boxes, deltas = random_boxes(20), torch.randn(20, 12)
    w = [10.0, 10.0, 5.0, 5.0]
    assert torch.equal(torch.jit.script(_decode)(w, deltas, boxes), _decode(w, deltas, boxes))
    rboxes = torch.cat([random_boxes(20)[:, :4], torch.rand(20, 1) * 360 - 180], 1).abs() + 1
    rdeltas = torch.randn(20, 10)
    assert torch.equal(torch.jit.script(_decode_rotated)(rdeltas, rboxes), _decode_rotated(rdeltas, rboxes))


@pytest.mark.parametrize("cls", [DefaultAnchorGenerator, RotatedAnchorGenerator])
def test_anchor_generators_scripted_equal_eager(cls):
    kwargs = dict(sizes=[[32, 64], [128]], aspect_ratios=[[0.5, 1.0, 2.0]], strides=[8, 16], offset=0.5)
    if cls is RotatedAnchorGenerator:
        kwargs["angles"] = [[-30.0, 0.0, 60.0]]
    gen = cls(**kwargs)
    scripted = torch.jit.script(gen)
    features = [torch.zeros(2, 4, 7, 9), torch.zeros(2, 4, 4, 5)]
    for a, b in zip(scripted(features), gen(features)):
        assert torch.equal(a.tensor, b.tensor)
    per_angle = 3 if cls is RotatedAnchorGenerator else 1
    assert gen.num_anchors == [6 * per_angle, 3 * per_angle]  # the eager-only properties still work


def test_resnet_and_fpn_scripted_equal_eager():
    torch.manual_seed(0)
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res4", "res5"]
    resnet = build_resnet_backbone(cfg, ShapeSpec(channels=3)).eval()
    x = torch.rand(2, 3, 64, 96)
    expected = resnet(x)
    got = torch.jit.script(resnet)(x)
    assert list(got) == list(expected)
    for k in expected:
        assert torch.equal(got[k], expected[k])
    # FPN with GroupNorm, as upstream's scratch config
    fpn_cfg = model_zoo.get_config("Misc/scratch_mask_rcnn_R_50_FPN_3x_gn.yaml")
    fpn_cfg.MODEL.RESNETS.DEPTH = 18
    fpn_cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    fpn_cfg.MODEL.FPN.OUT_CHANNELS = 32
    fpn = build_backbone(fpn_cfg).eval()
    expected = fpn(x)
    got = torch.jit.script(fpn)(x)
    assert list(got) == list(expected) == ["p2", "p3", "p4", "p5", "p6"]
    for k in expected:
        assert torch.allclose(got[k], expected[k], atol=1e-5)
    # scripting works on a copy: the eager module keeps its upstream state_dict names
    assert any(k.startswith("fpn_lateral") for k in fpn.state_dict())


def test_rpn_scripted_equals_eager():
    torch.manual_seed(0)
    cfg = get_cfg()
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32]]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 80
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 30
    shapes = {"p2": ShapeSpec(channels=8, stride=4), "p3": ShapeSpec(channels=8, stride=8)}
    rpn = build_proposal_generator(cfg, shapes).eval()
    features = {"p2": torch.randn(2, 8, 16, 20), "p3": torch.randn(2, 8, 8, 10)}
    images = ImageList(torch.zeros(2, 3, 64, 80), [(64, 80), (50, 70)])
    with patch_instances({"proposal_boxes": Boxes, "objectness_logits": Tensor}):
        scripted = torch.jit.script(rpn)
    expected, _ = rpn(images, features)
    got, losses = scripted(images, features)
    assert losses == {}
    for e, g in zip(expected, got):
        assert len(e) == 30
        assert torch.equal(g.proposal_boxes.tensor, e.proposal_boxes.tensor)
        assert torch.equal(g.objectness_logits, e.objectness_logits)

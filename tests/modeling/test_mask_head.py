import math

import numpy as np
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import BaseMaskRCNNHead, MaskRCNNConvUpsampleHead, ROI_MASK_HEAD_REGISTRY
from detectron2.modeling.roi_heads import build_mask_head
from detectron2.modeling.roi_heads.mask_head import mask_rcnn_inference, mask_rcnn_loss
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _left_half_instance(device="cpu", polygons=False):
    """One RoI covering an 8x8 image whose gt mask is the left half (class 1)."""
    inst = Instances((8, 8))
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]], device=device))
    inst.gt_classes = torch.tensor([1], device=device)
    if polygons:
        inst.gt_masks = PolygonMasks([[np.array([0.0, 0.0, 4.0, 0.0, 4.0, 8.0, 0.0, 8.0])]])
    else:
        mask = torch.zeros(1, 8, 8, dtype=torch.bool)
        mask[:, :, :4] = True
        inst.gt_masks = BitMasks(mask.to(device))
    return inst


def _hand_logits(device="cpu"):
    logits = torch.full((1, 3, 8, 8), 100.0)  # other classes' channels must be ignored
    row = torch.tensor([2.0, 2.0, 2.0, -1.0, -3.0, -3.0, -3.0, 1.0])  # wrong at columns 3 and 7
    logits[0, 1] = row.expand(8, 8)
    return logits.to(device).requires_grad_(True)


def test_mask_loss_hand_computed(device):
    logits = _hand_logits(device)
    with EventStorage() as storage:
        loss = mask_rcnn_loss(logits, [_left_half_instance(device)])
        stats = {k: v[0] for k, v in storage.latest().items()}
    per_row = 3 * _softplus(-2.0) + _softplus(1.0) + 3 * _softplus(-3.0) + _softplus(1.0)
    assert loss.item() == pytest.approx(per_row / 8, rel=1e-5)
    assert stats == pytest.approx(
        {"mask_rcnn/accuracy": 0.75, "mask_rcnn/false_positive": 0.25, "mask_rcnn/false_negative": 0.25}
    )
    loss.backward()
    assert logits.grad[0, [0, 2]].abs().sum() == 0 and logits.grad[0, 1].abs().sum() > 0


def test_mask_loss_class_agnostic_and_polygons():
    logits = _hand_logits()[:, 1:2].detach().requires_grad_(True)
    with EventStorage():
        agnostic = mask_rcnn_loss(logits, [_left_half_instance()])
        poly = mask_rcnn_loss(logits, [_left_half_instance(polygons=True)])
    per_row = 3 * _softplus(-2.0) + _softplus(1.0) + 3 * _softplus(-3.0) + _softplus(1.0)
    assert agnostic.item() == pytest.approx(per_row / 8, rel=1e-5)
    assert torch.isfinite(poly)
    poly.backward()


def test_mask_loss_empty_and_bad_input():
    logits = torch.zeros(0, 3, 8, 8, requires_grad=True)
    empty = Instances((8, 8))
    empty.proposal_boxes = Boxes(torch.zeros(0, 4))
    with EventStorage():
        loss = mask_rcnn_loss(logits, [empty])
    assert loss.item() == 0
    loss.backward()
    with EventStorage():
        with pytest.raises(ValueError, match="pred_mask_logits"):
            mask_rcnn_loss(torch.zeros(1, 8, 8), [_left_half_instance()])
        with pytest.raises(ValueError, match="square"):
            mask_rcnn_loss(torch.zeros(1, 3, 8, 6), [_left_half_instance()])
        with pytest.raises(ValueError, match="2 masks for 1 instances"):
            mask_rcnn_loss(torch.zeros(2, 3, 8, 8), [_left_half_instance()])


def test_mask_loss_visualization_images():
    with EventStorage() as storage:
        mask_rcnn_loss(_hand_logits(), [_left_half_instance()], vis_period=1)
        assert len(storage._vis_data) == 1
        name, image, _ = storage._vis_data[0]
    assert "mask prediction" in name and image.shape == (3, 8, 16)


def _random_boxes(gen, n, h=37, w=53):
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w * 1.2, h * 1.2]) - 5
    return torch.cat([xy, xy + torch.rand(n, 2, generator=gen) * torch.tensor([w, h]) * 0.8], dim=1)


def test_mask_loss_equal_with_gathered_gt_masks(device):
    """mask_rcnn_loss gives the same value whether each RoI's gt mask was copied or gathered."""
    gen = torch.Generator().manual_seed(11)
    masks = BitMasks((torch.rand(4, 37, 53, generator=gen) > 0.6).to(device))
    images = []
    for n in (6, 0, 9):
        index = torch.randint(0, 4, (n,), generator=gen).to(device)
        boxes = Boxes(_random_boxes(gen, n).to(device))
        images.append((index, boxes, torch.randint(0, 3, (n,), generator=gen).to(device)))
    logits = torch.randn(15, 3, 14, 14, generator=gen).to(device)
    losses = []
    for gathered in (False, True):
        instances = []
        for index, boxes, classes in images:
            gt_masks = masks.gather(index) if gathered else masks[index]
            instances.append(Instances((37, 53), proposal_boxes=boxes, gt_classes=classes, gt_masks=gt_masks))
        with EventStorage():
            losses.append(mask_rcnn_loss(logits, instances))
    assert torch.equal(losses[0], losses[1])


def test_mask_inference_picks_predicted_class(device):
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 5, 5, device=device)
    a, b = Instances((20, 20)), Instances((20, 20))
    a.pred_classes = torch.tensor([2, 0], device=device)
    b.pred_classes = torch.tensor([3], device=device)
    mask_rcnn_inference(logits, [a, b])
    assert a.pred_masks.shape == (2, 1, 5, 5) and b.pred_masks.shape == (1, 1, 5, 5)
    torch.testing.assert_close(a.pred_masks[1, 0], logits[1, 0].sigmoid())
    torch.testing.assert_close(b.pred_masks[0, 0], logits[2, 3].sigmoid())

    c = Instances((20, 20))
    c.pred_classes = torch.tensor([1], device=device)
    mask_rcnn_inference(logits[:1, :1], [c])  # class-agnostic
    torch.testing.assert_close(c.pred_masks[0, 0], logits[0, 0].sigmoid())
    with pytest.raises(ValueError, match="3 masks for 1 instances"):
        mask_rcnn_inference(logits, [c])


def test_upsample_head_matches_upstream_fpn_shapes():
    cfg = get_cfg()
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 4  # Base-RCNN-FPN
    head = build_mask_head(cfg, ShapeSpec(channels=256, width=14, height=14))
    assert isinstance(head, MaskRCNNConvUpsampleHead)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    expected = {}
    for i in range(1, 5):
        expected[f"mask_fcn{i}.weight"] = (256, 256, 3, 3)
        expected[f"mask_fcn{i}.bias"] = (256,)
    expected.update(
        {"deconv.weight": (256, 256, 2, 2), "deconv.bias": (256,), "predictor.weight": (80, 256, 1, 1), "predictor.bias": (80,)}
    )
    assert shapes == expected
    assert sum(p.numel() for p in head.parameters()) == 4 * 590080 + 262400 + 20560


def test_upsample_head_c4_and_options():
    cfg = get_cfg()  # C4 default: no conv, deconv straight on res5's 2048 channels
    cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK = True
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    head = build_mask_head(cfg, ShapeSpec(channels=32, width=7, height=7))
    assert set(head.state_dict()) == {"deconv.weight", "deconv.bias", "predictor.weight", "predictor.bias"}
    assert head.predictor.out_channels == 1
    assert head.layers(torch.randn(2, 32, 7, 7)).shape == (2, 1, 14, 14)

    gn = MaskRCNNConvUpsampleHead(ShapeSpec(channels=8), num_classes=2, conv_dims=[32, 32, 8], conv_norm="GN")
    assert "mask_fcn1.norm.weight" in gn.state_dict() and "mask_fcn1.bias" not in gn.state_dict()
    with pytest.raises(ValueError, match="conv_dims"):
        MaskRCNNConvUpsampleHead(ShapeSpec(channels=8), num_classes=2, conv_dims=[])


def test_head_forward_train_and_eval():
    torch.manual_seed(0)
    head = MaskRCNNConvUpsampleHead(ShapeSpec(channels=4), num_classes=3, conv_dims=[8, 8], loss_weight=2.0)
    x = torch.randn(1, 4, 4, 4, requires_grad=True)
    with EventStorage():
        losses = head(x, [_left_half_instance()])
    assert set(losses) == {"loss_mask"}
    # A fresh predictor gives logits near 0: the loss is close to 2 * ln 2.
    assert losses["loss_mask"].item() == pytest.approx(2 * math.log(2), abs=0.05)
    losses["loss_mask"].backward()
    assert torch.isfinite(x.grad).all()

    head.eval()
    det = Instances((8, 8))
    det.pred_boxes = Boxes(torch.tensor([[0.0, 0, 8, 8]]))
    det.pred_classes = torch.tensor([2])
    out = head(x.detach(), [det])
    assert out[0].pred_masks.shape == (1, 1, 8, 8)


def test_base_head_needs_layers():
    class NoLayers(BaseMaskRCNNHead):
        pass

    with pytest.raises(TypeError, match="layers"):
        NoLayers()(torch.zeros(1, 1, 2, 2), [])

    class Custom(BaseMaskRCNNHead):
        def __init__(self):
            super().__init__(vis_period=0)
            self.conv = torch.nn.Conv2d(2, 3, 1)

        def layers(self, x):
            return self.conv(x)

    head = Custom().eval()
    det = Instances((4, 4))
    det.pred_classes = torch.tensor([1])
    assert head(torch.zeros(1, 2, 4, 4), [det])[0].pred_masks.shape == (1, 1, 4, 4)
    assert "MaskRCNNConvUpsampleHead" in ROI_MASK_HEAD_REGISTRY

import math

import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import KRCNNConvDeconvUpsampleHead, build_keypoint_head
from detectron2.modeling.roi_heads.keypoint_head import keypoint_rcnn_inference, keypoint_rcnn_loss
from detectron2.modeling.roi_heads.roi_heads import select_proposals_with_visible_keypoints
from detectron2.structures import Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage


def _instance(device="cpu"):
    """One RoI [0, 0, 8, 8] with 3 keypoints: visible at (3, 5), invisible, outside."""
    inst = Instances((16, 16))
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0]], device=device))
    inst.gt_keypoints = Keypoints(torch.tensor([[[3.0, 5.0, 2.0], [1.0, 1.0, 0.0], [12.0, 3.0, 2.0]]], device=device))
    return inst


def test_keypoint_loss_hand_computed(device):
    # 4x4 heatmap over the 8x8 box: (3, 5) falls in cell x=1, y=2, flat index 9.
    logits = torch.zeros(1, 3, 4, 4, device=device, requires_grad=True)
    with EventStorage():
        uniform = keypoint_rcnn_loss(logits, [_instance(device)], normalizer=None)
    assert uniform.item() == pytest.approx(math.log(16), rel=1e-6)  # one valid keypoint

    peaked = torch.zeros(1, 3, 4, 4, device=device)
    peaked[0, 0, 2, 1] = 10.0
    peaked[0, 1:] = 50.0  # ignored keypoints
    with EventStorage():
        loss = keypoint_rcnn_loss(peaked, [_instance(device)], normalizer=4.0)
    assert loss.item() == pytest.approx(-math.log(math.exp(10) / (math.exp(10) + 15)) / 4, abs=1e-6)
    uniform.backward()
    assert logits.grad[0, 1:].abs().sum() == 0 and logits.grad[0, 0].abs().sum() > 0


def test_keypoint_loss_skips_batches_without_visible_keypoints():
    inst = _instance()
    inst.gt_keypoints = Keypoints(torch.tensor([[[3.0, 5.0, 0.0], [1.0, 1.0, 0.0], [12.0, 3.0, 2.0]]]))
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    with EventStorage() as storage:
        loss = keypoint_rcnn_loss(logits, [inst], normalizer=None)
        skipped = storage.latest()["kpts_num_skipped_batches"][0]
        loss_empty = keypoint_rcnn_loss(logits[:0], [inst[:0]], normalizer=None)
        assert storage.latest()["kpts_num_skipped_batches"][0] == skipped + 1
    assert loss.item() == 0 and loss_empty.item() == 0
    loss.backward()
    with EventStorage(), pytest.raises(ValueError, match="2 heatmaps for 1 instances"):
        keypoint_rcnn_loss(torch.zeros(2, 3, 4, 4), [inst], normalizer=None)


def test_keypoint_inference_decodes_peak(device):
    logits = torch.zeros(2, 2, 4, 4, device=device)
    logits[0, 0, 2, 1] = 5.0  # box 0, keypoint 0 at cell (x=1, y=2)
    logits[0, 1, 0, 3] = 5.0
    logits[1, 0, 3, 3] = 5.0
    a, b = Instances((40, 40)), Instances((40, 40))
    a.pred_boxes = Boxes(torch.tensor([[10.0, 20.0, 14.0, 24.0]], device=device))  # box size = heatmap size
    b.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0]], device=device))
    keypoint_rcnn_inference(logits, [a, b])
    assert a.pred_keypoints.shape == (1, 2, 3) and a.pred_keypoint_heatmaps.shape == (1, 2, 4, 4)
    torch.testing.assert_close(a.pred_keypoints[0, :, :2].cpu(), torch.tensor([[11.5, 22.5], [13.5, 20.5]]))
    torch.testing.assert_close(b.pred_keypoints[0, 0, :2].cpu(), torch.tensor([3.5, 3.5]))
    torch.testing.assert_close(a.pred_keypoint_heatmaps, logits[:1])
    # The score column is the peak's softmax over the heatmap.
    expected = math.exp(5) / (math.exp(5) + 15)
    assert a.pred_keypoints[0, 0, 2].item() == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="pred_keypoint_logits"):
        keypoint_rcnn_inference(logits[0], [a, b])


def test_krcnn_head_matches_upstream_shapes():
    cfg = get_cfg()  # Keypoint R-CNN: 8 convs of 512, 17 keypoints, on 256 x 14 x 14
    head = build_keypoint_head(cfg, ShapeSpec(channels=256, width=14, height=14))
    assert isinstance(head, KRCNNConvDeconvUpsampleHead)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    expected = {"conv_fcn1.weight": (512, 256, 3, 3), "conv_fcn1.bias": (512,)}
    for i in range(2, 9):
        expected[f"conv_fcn{i}.weight"] = (512, 512, 3, 3)
        expected[f"conv_fcn{i}.bias"] = (512,)
    expected.update({"score_lowres.weight": (512, 17, 4, 4), "score_lowres.bias": (17,)})
    assert shapes == expected
    assert sum(p.numel() for p in head.parameters()) == 1180160 + 7 * 2359808 + 139281
    assert head.loss_normalizer == "visible"


def test_krcnn_head_forward_and_normalizer():
    cfg = get_cfg()
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (8, 8)
    cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = 3
    cfg.MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS = False
    cfg.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT = 2.0
    head = build_keypoint_head(cfg, ShapeSpec(channels=4, width=7, height=7))
    assert head.loss_normalizer == 3 * 512 * 0.25
    x = torch.randn(1, 4, 7, 7, requires_grad=True)
    # 7x7 -> deconv 14x14 -> 2x bilinear: 28x28 heatmaps.
    assert head.layers(x).shape == (1, 3, 28, 28)
    with EventStorage():
        losses = head(x, [_instance()])
        raw = keypoint_rcnn_loss(head.layers(x), [_instance()], normalizer=1 * 3 * 512 * 0.25)
    assert losses["loss_keypoint"].item() == pytest.approx(2.0 * raw.item(), rel=1e-5)
    losses["loss_keypoint"].backward()
    assert torch.isfinite(x.grad).all()

    head.eval()
    det = Instances((16, 16))
    det.pred_boxes = Boxes(torch.tensor([[1.0, 2.0, 9.0, 12.0]]))
    out = head(x.detach(), [det])[0]
    assert out.pred_keypoints.shape == (1, 3, 3)
    assert ((out.pred_keypoints[0, :, 0] >= 1) & (out.pred_keypoints[0, :, 0] <= 9)).all()
    with pytest.raises(ValueError, match="loss_normalizer"):
        KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=4), num_keypoints=3, conv_dims=[4], loss_normalizer="all")


def test_select_proposals_with_visible_keypoints():
    inst = Instances((16, 16))
    inst.proposal_boxes = Boxes(torch.tensor([[0.0, 0, 8, 8], [10, 10, 12, 12], [0, 0, 16, 16]]))
    inst.gt_keypoints = Keypoints(
        torch.tensor(
            [
                [[3.0, 5.0, 2.0], [9.0, 9.0, 2.0]],  # first keypoint inside box 0
                [[11.0, 11.0, 0.0], [1.0, 1.0, 2.0]],  # inside box 1 but not visible
                [[16.0, 16.0, 1.0], [0.0, 0.0, 0.0]],  # on the border of box 2: inside
            ]
        )
    )
    empty = inst[:0]
    with EventStorage() as storage:
        kept = select_proposals_with_visible_keypoints([inst, empty])
        assert storage.latest()["keypoint_head/num_fg_samples"][0] == 2
    torch.testing.assert_close(kept[0].proposal_boxes.tensor, inst.proposal_boxes.tensor[[0, 2]])
    assert len(kept[1]) == 0

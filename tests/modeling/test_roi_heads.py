import os
import sys

import pytest
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import (
    ROI_HEADS_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    Res5ROIHeads,
    StandardROIHeads,
    build_roi_heads,
    select_foreground_proposals,
)
from detectron2.modeling.roi_heads.mask_head import BaseMaskRCNNHead
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import roi_heads_testing as T  # noqa: E402


def _fpn_cfg(channels=256):
    """Base-RCNN-FPN's ROI settings (plus MASK_ON, as in mask_rcnn_R_50_FPN)."""
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 4
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    return cfg


def _tiny_heads(mask=True, keypoints=True, **overrides):
    cfg = T.small_cfg()
    cfg.MODEL.MASK_ON = mask
    cfg.MODEL.KEYPOINT_ON = keypoints
    for k, v in overrides.items():
        cfg.merge_from_list([k, v])
    return build_roi_heads(cfg, T.input_shape())


# ---------------------------------------------------------------- upstream structure


def test_standard_fpn_heads_match_upstream_state_dict():
    heads = build_roi_heads(_fpn_cfg(), T.input_shape(256))
    assert isinstance(heads, StandardROIHeads)
    expected = {
        "box_head.fc1.weight": (1024, 256 * 7 * 7),
        "box_head.fc1.bias": (1024,),
        "box_head.fc2.weight": (1024, 1024),
        "box_head.fc2.bias": (1024,),
        "box_predictor.cls_score.weight": (81, 1024),
        "box_predictor.cls_score.bias": (81,),
        "box_predictor.bbox_pred.weight": (320, 1024),
        "box_predictor.bbox_pred.bias": (320,),
        "mask_head.deconv.weight": (256, 256, 2, 2),
        "mask_head.deconv.bias": (256,),
        "mask_head.predictor.weight": (80, 256, 1, 1),
        "mask_head.predictor.bias": (80,),
    }
    for i in range(1, 5):
        expected[f"mask_head.mask_fcn{i}.weight"] = (256, 256, 3, 3)
        expected[f"mask_head.mask_fcn{i}.bias"] = (256,)
    assert {k: tuple(v.shape) for k, v in heads.state_dict().items()} == expected
    assert sum(p.numel() for p in heads.parameters()) == 14306705 + 2643280
    assert heads.box_pooler.output_size == (7, 7) and heads.mask_pooler.output_size == (14, 14)
    assert [p.spatial_scale for p in heads.box_pooler.level_poolers] == [1 / 4, 1 / 8, 1 / 16, 1 / 32]
    assert heads.box_in_features == heads.in_features == ["p2", "p3", "p4", "p5"]
    assert heads.proposal_matcher.thresholds[1:-1] == [0.5] and heads.proposal_matcher.labels == [0, 1]
    assert (heads.batch_size_per_image, heads.positive_fraction, heads.num_classes) == (512, 0.25, 80)


def test_keypoint_rcnn_heads_match_upstream_state_dict():
    cfg = _fpn_cfg()
    cfg.MODEL.MASK_ON = False
    cfg.MODEL.KEYPOINT_ON = True
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1
    heads = build_roi_heads(cfg, T.input_shape(256))
    keys = set(heads.state_dict())
    assert {f"keypoint_head.conv_fcn{i}.weight" for i in range(1, 9)} <= keys
    assert {"keypoint_head.score_lowres.weight", "keypoint_head.score_lowres.bias"} <= keys
    assert not any(k.startswith("mask_head") for k in keys)
    assert heads.keypoint_pooler.output_size == (14, 14)
    assert heads.box_predictor.cls_score.out_features == 2


def test_res5_heads_match_upstream_state_dict():
    cfg = get_cfg()  # the defaults are the C4 model's: Res5ROIHeads on res4, pooler 14
    cfg.MODEL.MASK_ON = True
    heads = build_roi_heads(cfg, {"res4": ShapeSpec(channels=1024, stride=16)})
    assert isinstance(heads, Res5ROIHeads)
    shapes = {k: tuple(v.shape) for k, v in heads.state_dict().items()}
    for b in range(3):
        in_ch = 1024 if b == 0 else 2048
        assert shapes[f"res5.{b}.conv1.weight"] == (512, in_ch, 1, 1)
        assert shapes[f"res5.{b}.conv2.weight"] == (512, 512, 3, 3)
        assert shapes[f"res5.{b}.conv3.weight"] == (2048, 512, 1, 1)
        for name in ("weight", "bias", "running_mean", "running_var"):
            assert shapes[f"res5.{b}.conv3.norm.{name}"] == (2048,)
    assert shapes["res5.0.shortcut.weight"] == (2048, 1024, 1, 1)
    assert "res5.1.shortcut.weight" not in shapes
    assert shapes["box_predictor.cls_score.weight"] == (81, 2048)
    assert shapes["box_predictor.bbox_pred.weight"] == (320, 2048)
    assert shapes["mask_head.deconv.weight"] == (2048, 256, 2, 2)
    assert shapes["mask_head.predictor.weight"] == (80, 256, 1, 1)
    assert not any(k.startswith("mask_head.mask_fcn") for k in shapes)
    # FrozenBN keeps its affine terms as buffers: only the convs and linears count.
    assert sum(p.numel() for p in heads.parameters()) == 14942208 + 165969 + 655680 + 2097408 + 20560
    assert heads.res5[0].conv1.stride == (2, 2)  # STRIDE_IN_1X1 (MSRA weights)


def test_registry_and_bad_configs():
    assert {"StandardROIHeads", "Res5ROIHeads", "CascadeROIHeads", "RROIHeads"} <= set(
        k for k, _ in ROI_HEADS_REGISTRY
    )
    cfg = T.small_cfg()
    shapes = T.input_shape()
    shapes["p5"] = ShapeSpec(channels=4, stride=32)
    with pytest.raises(ValueError, match="equal channels"):
        build_roi_heads(cfg, shapes)
    c4 = get_cfg()
    c4.MODEL.ROI_HEADS.IN_FEATURES = ["res3", "res4"]
    with pytest.raises(ValueError, match="exactly one feature map"):
        build_roi_heads(c4, {"res3": ShapeSpec(channels=8, stride=8), "res4": ShapeSpec(channels=8, stride=16)})
    c4 = get_cfg()
    c4.MODEL.KEYPOINT_ON = True
    with pytest.raises(ValueError, match="KEYPOINT_ON"):
        build_roi_heads(c4, {"res4": ShapeSpec(channels=8, stride=16)})


# ---------------------------------------------------------------- sampling


def test_label_and_sample_proposals():
    torch.manual_seed(0)
    heads = _tiny_heads(**{"MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 8})
    targets = T.targets(masks=True, keypoints=4)
    no_gt = targets[1][:0]
    props = T.proposals()
    with EventStorage() as storage:
        sampled = heads.label_and_sample_proposals(props, [targets[0], no_gt])
        latest = storage.latest()
    assert set(latest) >= {"roi_head/num_fg_samples", "roi_head/num_bg_samples"}

    first = sampled[0]
    assert len(first) == 8
    fg = first.gt_classes != heads.num_classes
    assert 1 <= int(fg.sum()) <= 2  # positive fraction 0.25 of 8
    assert set(first.get_fields()) >= {"proposal_boxes", "objectness_logits", "gt_classes", "gt_boxes", "gt_masks", "gt_keypoints"}
    ious = pairwise_iou(first.proposal_boxes[fg], first.gt_boxes[fg]).diagonal()
    assert (ious >= 0.5).all()
    for cls, box in zip(first.gt_classes[fg], first.gt_boxes.tensor[fg]):
        i = [b for b in T.GT_BOXES[0]].index(box.tolist())
        assert cls.item() == T.GT_CLASSES[0][i]
    bg_ious = pairwise_iou(first.proposal_boxes[~fg], targets[0].gt_boxes).max(dim=1).values
    assert (bg_ious < 0.5).all()
    assert latest["roi_head/num_fg_samples"][0] == pytest.approx(float(fg.sum()) / 2)

    second = sampled[1]  # no gt: only background, and no gt_* field but gt_classes
    assert (second.gt_classes == heads.num_classes).all()
    assert not second.has("gt_boxes") and len(second) == 8


def test_sampling_without_appended_gt():
    heads = _tiny_heads(**{"MODEL.ROI_HEADS.PROPOSAL_APPEND_GT": False})
    far = Instances(T.IMAGE_SIZE)
    far.proposal_boxes = Boxes(torch.tensor([[60.0, 0.0, 63.0, 3.0]]))
    far.objectness_logits = torch.zeros(1)
    with EventStorage():
        sampled = heads.label_and_sample_proposals([far], T.targets()[:1])
    assert len(sampled[0]) == 1 and sampled[0].gt_classes.tolist() == [heads.num_classes]
    with pytest.raises(ValueError, match="proposal lists"):
        heads.label_and_sample_proposals([far, far], T.targets()[:1])


def test_select_foreground_proposals():
    inst = Instances((10, 10))
    inst.gt_classes = torch.tensor([0, 3, -1, 2])
    fg, masks = select_foreground_proposals([inst], bg_label=3)
    assert fg[0].gt_classes.tolist() == [0, 2]
    assert masks[0].tolist() == [True, False, False, True]
    with pytest.raises(TypeError, match="list of Instances"):
        select_foreground_proposals(inst, 3)
    with pytest.raises(ValueError, match="gt_classes"):
        select_foreground_proposals([Instances((1, 1))], 3)


# ---------------------------------------------------------------- StandardROIHeads


def test_standard_heads_training_losses_backprop():
    torch.manual_seed(0)
    heads = _tiny_heads()
    features = {k: v.requires_grad_(True) for k, v in T.fpn_features().items()}
    with EventStorage() as storage:
        proposals, losses = heads(None, features, T.proposals(), T.targets(masks=True, keypoints=4))
        logged = set(storage.latest())
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_keypoint"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert {"fast_rcnn/cls_accuracy", "mask_rcnn/accuracy", "keypoint_head/num_fg_samples"} <= logged
    assert len(proposals) == 2 and all(p.has("gt_classes") for p in proposals)
    sum(losses.values()).backward()
    for name, p in heads.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(f.grad is not None for f in features.values())


def test_standard_heads_inference_fields():
    torch.manual_seed(0)
    heads = _tiny_heads(**{"TEST.DETECTIONS_PER_IMAGE": 5}).eval()
    with torch.no_grad():
        results, extra = heads(None, T.fpn_features(), T.proposals())
    assert extra == {}
    for r in results:
        assert r.image_size == T.IMAGE_SIZE
        assert set(r.get_fields()) == {
            "pred_boxes", "scores", "pred_classes", "pred_masks", "pred_keypoints", "pred_keypoint_heatmaps"
        }
        assert 0 < len(r) <= 5
        assert (r.scores[:-1] >= r.scores[1:]).all()
        assert r.pred_masks.shape == (len(r), 1, 28, 28)
        assert r.pred_keypoints.shape == (len(r), 4, 3)
        assert r.pred_keypoint_heatmaps.shape == (len(r), 4, 56, 56)
        assert ((r.pred_classes >= 0) & (r.pred_classes < 3)).all()


def test_standard_heads_empty_proposals_inference():
    heads = _tiny_heads().eval()
    empty = Instances(T.IMAGE_SIZE)
    empty.proposal_boxes = Boxes(torch.zeros(0, 4))
    empty.objectness_logits = torch.zeros(0)
    with torch.no_grad():
        results, _ = heads(None, T.fpn_features(batch=1), [empty])
    assert len(results[0]) == 0
    assert results[0].pred_masks.shape == (0, 1, 28, 28)
    assert results[0].pred_keypoints.shape == (0, 4, 3)


def test_forward_with_given_boxes():
    torch.manual_seed(0)
    heads = _tiny_heads().eval()
    given = []
    for boxes in T.GT_BOXES:
        inst = Instances(T.IMAGE_SIZE)
        inst.pred_boxes = Boxes(torch.tensor(boxes))
        inst.pred_classes = torch.zeros(len(boxes), dtype=torch.int64)
        given.append(inst)
    with torch.no_grad():
        out = heads.forward_with_given_boxes(T.fpn_features(), given)
    assert [len(x) for x in out] == [2, 1]
    assert out[0].pred_masks.shape == (2, 1, 28, 28)
    assert out[1].pred_keypoints.shape == (1, 4, 3)

    no_classes = Instances(T.IMAGE_SIZE)
    no_classes.pred_boxes = Boxes(torch.tensor(T.GT_BOXES[1]))
    with pytest.raises(ValueError, match="pred_classes"):
        heads.forward_with_given_boxes(T.fpn_features(batch=1), [no_classes])
    heads.train()
    with pytest.raises(RuntimeError, match="inference"):
        heads.forward_with_given_boxes(T.fpn_features(), given)


def test_train_on_pred_boxes_replaces_proposal_boxes():
    def run(train_on_pred_boxes):
        torch.manual_seed(0)
        heads = _tiny_heads(
            mask=False, keypoints=False, **{"MODEL.ROI_BOX_HEAD.TRAIN_ON_PRED_BOXES": train_on_pred_boxes}
        )
        nn.init.zeros_(heads.box_predictor.bbox_pred.weight)
        with torch.no_grad():
            heads.box_predictor.bbox_pred.bias.copy_(torch.tensor([1.0, 0, 0, 0] * 3))  # dx = 0.1 box width
        torch.manual_seed(1)
        with EventStorage():
            proposals, _ = heads(None, T.fpn_features(), T.proposals(), T.targets())
        return proposals

    before, after = run(False), run(True)
    for b, a in zip(before, after):
        widths = b.proposal_boxes.tensor[:, 2] - b.proposal_boxes.tensor[:, 0]
        shift = torch.stack([widths, torch.zeros_like(widths)] * 2, dim=1) * 0.1
        torch.testing.assert_close(a.proposal_boxes.tensor, b.proposal_boxes.tensor + shift)


def test_bad_inputs():
    heads = _tiny_heads()
    with EventStorage():
        with pytest.raises(ValueError, match="targets"):
            heads(None, T.fpn_features(), T.proposals())
        with pytest.raises(ValueError, match="proposal lists"):
            heads(None, T.fpn_features(), T.proposals(), T.targets()[:1])
        with pytest.raises(TypeError, match="proposals"):
            heads(None, T.fpn_features(), T.proposals()[0], T.targets())
        features = T.fpn_features()
        del features["p3"]
        with pytest.raises(KeyError, match="p3"):
            heads(None, features, T.proposals(), T.targets())


@ROI_MASK_HEAD_REGISTRY.register()
class _DictInputMaskHead(BaseMaskRCNNHead):
    """A head that pools for itself: it gets the feature maps by name."""

    def __init__(self, cfg, input_shape):
        super().__init__()
        self.names = sorted(input_shape)
        self.predictor = nn.Linear(1, 1)

    def layers(self, x):
        assert isinstance(x, dict) and sorted(x) == self.names
        return x

    def forward(self, x, instances):
        self.layers(x)
        if self.training:
            return {"loss_mask": self.predictor.weight.sum() * 0}
        return instances


def test_mask_branch_without_pooler_passes_feature_dict():
    cfg = T.small_cfg()
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_MASK_HEAD.NAME = "_DictInputMaskHead"
    cfg.MODEL.ROI_MASK_HEAD.POOLER_TYPE = ""
    heads = build_roi_heads(cfg, T.input_shape())
    assert heads.mask_pooler is None and heads.mask_head.names == ["p2", "p3", "p4", "p5"]
    with EventStorage():
        _, losses = heads(None, T.fpn_features(), T.proposals(), T.targets())
    assert "loss_mask" in losses


# ---------------------------------------------------------------- Res5ROIHeads


def _tiny_res5(mask=True):
    cfg = get_cfg()
    cfg.MODEL.MASK_ON = mask
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16  # res5: 64 -> 128 channels
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 2  # bottleneck 16
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    heads = build_roi_heads(cfg, {"res4": ShapeSpec(channels=64, stride=16)})
    features = {"res4": torch.randn(2, 64, 4, 4)}
    return heads, features


def test_res5_heads_train_and_inference():
    torch.manual_seed(0)
    heads, features = _tiny_res5()
    assert heads.res5[0].conv1.in_channels == 64 and heads.res5[2].conv3.out_channels == 128
    with EventStorage():
        out, losses = heads(None, features, T.proposals(), T.targets(masks=True))
    assert out == [] and set(losses) == {"loss_cls", "loss_box_reg", "loss_mask"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert heads.res5[0].conv1.weight.grad is not None

    heads.eval()
    with torch.no_grad():
        results, _ = heads(None, features, T.proposals())
    for r in results:
        assert set(r.get_fields()) == {"pred_boxes", "scores", "pred_classes", "pred_masks"}
        assert r.pred_masks.shape[1:] == (1, 14, 14)


def test_res5_heads_without_mask():
    torch.manual_seed(0)
    heads, features = _tiny_res5(mask=False)
    heads.eval()
    with torch.no_grad():
        results, _ = heads(None, features, T.proposals())
        given = heads.forward_with_given_boxes(features, results)
    assert not results[0].has("pred_masks") and given is results


def test_res5_heads_from_lists_of_blocks():
    heads, _ = _tiny_res5(mask=False)
    rebuilt = Res5ROIHeads(
        in_features=["res4"],
        pooler=heads.pooler,
        res5=list(heads.res5),
        box_predictor=heads.box_predictor,
        num_classes=3,
        batch_size_per_image=16,
        positive_fraction=0.25,
        proposal_matcher=heads.proposal_matcher,
    )
    assert isinstance(rebuilt.res5, nn.Sequential) and set(rebuilt.state_dict()) == set(heads.state_dict())


# ---------------------------------------------------------------- devices


def test_standard_heads_on_device(device):
    torch.manual_seed(0)
    heads = _tiny_heads().to(device)
    with EventStorage():
        _, losses = heads(
            None, T.fpn_features(device=device), T.proposals(device=device),
            T.targets(device=device, masks=True, keypoints=4),
        )
    total = sum(losses.values())
    assert torch.isfinite(total) and total.device.type == device.type
    total.backward()


@pytest.mark.cuda
def test_standard_heads_inference_cuda_matches_cpu():
    torch.manual_seed(0)
    heads = _tiny_heads(mask=True, keypoints=False).eval().double()
    features = {k: v.double() for k, v in T.fpn_features().items()}
    with torch.no_grad():
        cpu, _ = heads(None, features, T.proposals())
        heads.cuda()
        gpu, _ = heads(None, {k: v.cuda() for k, v in features.items()}, T.proposals(device="cuda"))
    for a, b in zip(cpu, gpu):
        assert len(a) == len(b)
        torch.testing.assert_close(b.pred_boxes.tensor.cpu(), a.pred_boxes.tensor, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(b.scores.cpu().double(), a.scores.double(), rtol=1e-4, atol=1e-5)
        assert torch.equal(b.pred_classes.cpu(), a.pred_classes)
        torch.testing.assert_close(b.pred_masks.cpu(), a.pred_masks, rtol=1e-4, atol=1e-5)


def test_training_on_images_without_gt():
    torch.manual_seed(0)
    heads = _tiny_heads()
    empty_targets = [t[:0] for t in T.targets(masks=True, keypoints=4)]
    with EventStorage():
        proposals, losses = heads(None, T.fpn_features(), T.proposals(), empty_targets)
    assert all((p.gt_classes == heads.num_classes).all() for p in proposals)
    assert losses["loss_box_reg"].item() == 0 and losses["loss_mask"].item() == 0
    assert losses["loss_keypoint"].item() == 0 and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = _tiny_heads().eval()
    torch.manual_seed(1)
    b = _tiny_heads().eval()
    b.load_state_dict(a.state_dict(), strict=True)
    with torch.no_grad():
        ra, _ = a(None, T.fpn_features(), T.proposals())
        rb, _ = b(None, T.fpn_features(), T.proposals())
    for x, y in zip(ra, rb):
        torch.testing.assert_close(x.pred_boxes.tensor, y.pred_boxes.tensor)
        torch.testing.assert_close(x.pred_masks, y.pred_masks)
        torch.testing.assert_close(x.pred_keypoints, y.pred_keypoints)

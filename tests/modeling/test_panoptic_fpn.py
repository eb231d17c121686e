"""PanopticFPN and combine_semantic_and_instance_outputs.

Most tests use a fake proposal generator and ROI heads with upstream's interfaces,
which make the expected panoptic output easy to state; one builds the whole model
from a config with the real RPN and StandardROIHeads (mask on)."""
import pytest
import torch
from dense_toys import gt_instances, r18_fpn_cfg
from torch import nn

from detectron2.modeling import META_ARCH_REGISTRY, PanopticFPN, build_backbone, build_model
from detectron2.modeling.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

NUM_SEM_CLASSES = 3  # 0 = things, 1 and 2 = stuff


class FakeRPN(nn.Module):
    """No proposals (the fake ROI heads ignore them); a loss that reaches the features."""

    def forward(self, images, features, gt_instances=None):
        if self.training:
            return None, {"loss_rpn_cls": features["p3"].mean() * 0 + 0.5, "loss_rpn_loc": features["p4"].mean() * 0}
        return None, {}


class FakeROIHeads(nn.Module):
    """Fixed detections with 28x28 soft masks, in the frame of each input image."""

    def forward(self, images, features, proposals, targets=None):
        if self.training:
            assert targets is not None and targets[0].has("gt_boxes")
            return [], {"loss_cls": features["p2"].mean() * 0 + 1.0}
        results = []
        for h, w in images.image_sizes:
            inst = Instances((h, w))
            inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, w / 2, h / 2], [w / 4, h / 4, w, h]]))
            inst.scores = torch.tensor([0.9, 0.4])
            inst.pred_classes = torch.tensor([2, 5])
            inst.pred_masks = torch.ones(2, 1, 28, 28)
            results.append(inst)
        return results, {}


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = r18_fpn_cfg("build_resnet_fpn_backbone", ["res2", "res3", "res4", "res5"], 32)
    backbone = build_backbone(cfg)
    shapes = {k: v for k, v in backbone.output_shape().items() if k != "p6"}
    sem_seg_head = SemSegFPNHead(
        shapes, num_classes=NUM_SEM_CLASSES, conv_dims=32, common_stride=4, norm="GN", ignore_value=255, loss_weight=0.5
    )
    return PanopticFPN(
        backbone=backbone,
        proposal_generator=FakeRPN(),
        roi_heads=FakeROIHeads(),
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        sem_seg_head=sem_seg_head,
        **kwargs,
    )


def _inputs():
    g = torch.Generator().manual_seed(0)
    inputs = []
    for h, w in ((64, 96), (72, 64)):
        inst = gt_instances((h, w), [[4, 4, 40, 30]], [1])
        inputs.append(
            {
                "image": torch.rand(3, h, w, generator=g) * 255,
                "sem_seg": torch.randint(0, NUM_SEM_CLASSES, (h, w), generator=g),
                "instances": inst,
            }
        )
    return inputs


def test_defaults():
    model = _model()
    assert (model.combine_overlap_thresh, model.combine_stuff_area_thresh, model.combine_instances_score_thresh) == (
        0.5, 4096, 0.5,
    )
    keys = model.state_dict().keys()
    assert "sem_seg_head.predictor.weight" in keys and "sem_seg_head.p5.4.norm.weight" in keys


def test_training_losses():
    model = _model().train()
    losses = model(_inputs())
    assert set(losses) == {"loss_sem_seg", "loss_rpn_cls", "loss_rpn_loc", "loss_cls"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.sem_seg_head.predictor.weight.grad.abs().sum() > 0


def test_inference_outputs():
    model = _model(combine_stuff_area_thresh=0).eval()
    inputs = _inputs()
    inputs[0]["height"], inputs[0]["width"] = 128, 192
    with torch.no_grad():
        out = model(inputs)
    assert [set(o) for o in out] == [{"sem_seg", "instances", "panoptic_seg"}] * 2
    sem_seg, instances = out[0]["sem_seg"], out[0]["instances"]
    assert sem_seg.shape == (NUM_SEM_CLASSES, 128, 192)
    assert instances.image_size == (128, 192) and instances.pred_masks.shape == (2, 128, 192)
    panoptic, segments = out[0]["panoptic_seg"]
    assert panoptic.shape == (128, 192) and panoptic.dtype == torch.int32
    # Only the first instance passes the 0.5 score threshold: its pasted mask is the
    # top-left quarter (less the corners, which bilinear pasting softens below 0.5).
    things = [s for s in segments if s["isthing"]]
    assert things == [{"id": 1, "isthing": True, "score": pytest.approx(0.9), "category_id": 2, "instance_id": 0}]
    assert torch.equal(panoptic == 1, instances.pred_masks[0])
    assert (panoptic[2:62, 2:94] == 1).all() and not (panoptic[66:, :] == 1).any()
    # Every other pixel is stuff (area threshold 0) unless its semantic label is 0.
    labels = sem_seg.argmax(dim=0)
    rest = panoptic != 1
    assert ((panoptic[rest] == 0) == (labels[rest] == 0)).all()
    assert {s["category_id"] for s in segments if not s["isthing"]} <= {1, 2}
    assert sum(s["area"] for s in segments if not s["isthing"]) == int(((labels != 0) & rest).sum())


def test_inference_without_postprocess():
    model = _model().eval()
    with torch.no_grad():
        detections, sem_seg = model.inference(_inputs(), do_postprocess=False)
    assert len(detections) == 2 and detections[0].image_size == (64, 96)
    assert sem_seg.shape == (2, NUM_SEM_CLASSES, 96, 96)  # the padded batch


def test_training_needs_targets():
    model = _model().train()
    inputs = _inputs()
    for x in inputs:
        del x["sem_seg"]
    with pytest.raises(ValueError, match="needs 'sem_seg'"):
        model(inputs)
    inputs = _inputs()
    del inputs[0]["instances"]
    with pytest.raises(ValueError, match="needs 'instances'"):
        model(inputs)


def _panoptic_cfg(device="cpu"):
    cfg = r18_fpn_cfg("build_resnet_fpn_backbone", ["res2", "res3", "res4", "res5"], 32, device)
    cfg.MODEL.META_ARCHITECTURE = "PanopticFPN"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 64
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 14
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = NUM_SEM_CLASSES
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 0.5
    cfg.MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT = 64
    cfg.MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH = 0.0
    return cfg


def _with_masks(inputs):
    for x in inputs:
        inst = x["instances"]
        masks = torch.zeros(len(inst), *inst.image_size, dtype=torch.bool)
        masks[:, 6:28, 6:38] = True
        inst.gt_masks = BitMasks(masks)
    return inputs


def test_from_config_with_real_rpn_and_roi_heads():
    assert META_ARCH_REGISTRY.get("PanopticFPN") is PanopticFPN
    torch.manual_seed(0)
    model = build_model(_panoptic_cfg())
    assert isinstance(model, PanopticFPN)
    assert (model.combine_overlap_thresh, model.combine_stuff_area_thresh, model.combine_instances_score_thresh) == (
        0.5, 64, 0.0,
    )
    assert model.sem_seg_head.in_features == ["p2", "p3", "p4", "p5"] and model.sem_seg_head.loss_weight == 0.5
    model.train()
    with EventStorage():
        losses = model(_with_masks(_inputs()))
    assert set(losses) == {
        "loss_sem_seg", "loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg", "loss_mask",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(_inputs())
    assert set(out[1]) == {"sem_seg", "instances", "panoptic_seg"}
    panoptic, segments = out[1]["panoptic_seg"]
    assert panoptic.shape == (72, 64) and out[1]["instances"].pred_masks.shape[1:] == (72, 64)
    ids = sorted(s["id"] for s in segments)
    assert ids == list(range(1, len(segments) + 1))
    assert set(torch.unique(panoptic).tolist()) <= {0, *ids}


def test_instance_loss_weight_folds_into_roi_heads():
    cfg = _panoptic_cfg()
    cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT = 0.5
    model = build_model(cfg)
    # From a config the box predictor's weights are {"loss_box_reg": ...} only, so (as
    # upstream) the classification loss keeps weight 1.
    assert model.roi_heads.box_predictor.loss_weight == {"loss_box_reg": 0.5}
    assert model.roi_heads.mask_head.loss_weight == 0.5


def _hand_instances():
    h, w = 4, 6
    masks = torch.zeros(5, h, w, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True  # A, 0.9
    masks[1, 1:3, 1:3] = True  # B, 0.6: 1 of its 4 pixels is taken by A
    masks[2, 0:2, 0:3] = True  # C, 0.8: 4 of 6 taken by A -> dropped
    # D (index 3, 0.7) is empty -> dropped
    masks[4, 3, :] = True  # E, 0.3: below the score threshold
    inst = Instances((h, w))
    inst.pred_masks = masks
    inst.scores = torch.tensor([0.9, 0.6, 0.8, 0.7, 0.3])
    inst.pred_classes = torch.tensor([7, 3, 5, 1, 2])
    return inst


def test_combine_hand_case():
    semantic = torch.zeros(4, 6, dtype=torch.int64)
    semantic[0:3, 3:6] = 1  # 9 pixels of stuff 1
    semantic[3, :] = 2  # 6 pixels of stuff 2: below the area threshold of 7
    panoptic, segments = combine_semantic_and_instance_outputs(_hand_instances(), semantic, 0.5, 7, 0.5)
    expected = torch.tensor(
        [
            [1, 1, 0, 3, 3, 3],
            [1, 1, 2, 3, 3, 3],
            [0, 2, 2, 3, 3, 3],
            [0, 0, 0, 0, 0, 0],
        ],
        dtype=torch.int32,
    )
    assert torch.equal(panoptic, expected)
    assert segments == [
        {"id": 1, "isthing": True, "score": pytest.approx(0.9), "category_id": 7, "instance_id": 0},
        {"id": 2, "isthing": True, "score": pytest.approx(0.6), "category_id": 3, "instance_id": 1},
        {"id": 3, "isthing": False, "category_id": 1, "area": 9},
    ]


def test_combine_thresholds():
    semantic = torch.zeros(4, 6, dtype=torch.int64)
    # A looser overlap threshold keeps C (on its 2 free pixels); class 0 is never stuff.
    panoptic, segments = combine_semantic_and_instance_outputs(_hand_instances(), semantic, 0.7, 0, 0.5)
    assert [s["instance_id"] for s in segments] == [0, 2, 1]
    assert all(s["isthing"] for s in segments)
    assert panoptic[0, 2] == 2 and panoptic[1, 2] == 2
    # Instances below the score threshold are ignored: with 0.2, E gets row 3.
    panoptic, segments = combine_semantic_and_instance_outputs(_hand_instances(), semantic, 0.5, 0, 0.2)
    assert segments[-1]["instance_id"] == 4 and (panoptic[3] == segments[-1]["id"]).all()
    # No instance at all: only stuff.
    empty = Instances((4, 6), pred_masks=torch.zeros(0, 4, 6), scores=torch.zeros(0), pred_classes=torch.zeros(0))
    semantic[2:, :] = 1
    panoptic, segments = combine_semantic_and_instance_outputs(empty, semantic, 0.5, 0, 0.5)
    assert segments == [{"id": 1, "isthing": False, "category_id": 1, "area": 12}]
    assert (panoptic[2:] == 1).all() and (panoptic[:2] == 0).all()


def test_combine_bad_inputs():
    with pytest.raises(ValueError, match="integer label map"):
        combine_semantic_and_instance_outputs(_hand_instances(), torch.zeros(4, 6), 0.5, 0, 0.5)
    with pytest.raises(ValueError, match="integer label map"):
        combine_semantic_and_instance_outputs(_hand_instances(), torch.zeros(1, 4, 6, dtype=torch.int64), 0.5, 0, 0.5)
    with pytest.raises(ValueError, match="do not match"):
        combine_semantic_and_instance_outputs(_hand_instances(), torch.zeros(5, 6, dtype=torch.int64), 0.5, 0, 0.5)


@pytest.mark.cuda
def test_inference_on_cuda():
    model = _model(combine_stuff_area_thresh=0)
    model.roi_heads = _CudaROIHeads()
    model.to("cuda").eval()  # after the swap: a new module starts in training mode
    with torch.no_grad():
        out = model(_inputs())
    panoptic, segments = out[0]["panoptic_seg"]
    assert panoptic.device.type == "cuda" and out[0]["sem_seg"].device.type == "cuda"
    assert segments[0]["isthing"] and torch.equal(panoptic == 1, out[0]["instances"].pred_masks[0])
    assert (panoptic[2:30, 2:46] == 1).all()


class _CudaROIHeads(FakeROIHeads):
    def forward(self, images, features, proposals, targets=None):
        results, losses = super().forward(images, features, proposals, targets)
        return [r.to(images.tensor.device) for r in results], losses

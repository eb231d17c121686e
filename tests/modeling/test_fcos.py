"""FCOS and FCOSHead on a ResNet-18 FPN with small images."""
import math

import pytest
import torch
from dense_toys import gt_instances, r18_fpn_cfg

from detectron2.layers import ShapeSpec
from detectron2.modeling import FCOS, build_backbone
from detectron2.modeling.meta_arch.fcos import FCOSHead
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

NUM_CLASSES = 3


def _backbone():
    return build_backbone(r18_fpn_cfg("build_retinanet_resnet_fpn_backbone", ["res3", "res4", "res5"], 32))


def build_fcos(device="cpu", **kwargs):
    torch.manual_seed(0)
    backbone = _backbone()
    in_features = ["p3", "p4", "p5", "p6", "p7"]
    shapes = [backbone.output_shape()[f] for f in in_features]
    head = FCOSHead(input_shape=shapes, conv_dims=[32, 32], num_classes=NUM_CLASSES, norm="GN")
    model = FCOS(
        backbone=backbone,
        head=head,
        head_in_features=in_features,
        num_classes=NUM_CLASSES,
        pixel_mean=[103.53, 116.28, 123.675],
        pixel_std=[1.0, 1.0, 1.0],
        **kwargs,
    )
    return model.to(device)


def _training_inputs():
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand(3, 96, 128, generator=g) * 255,
            "instances": gt_instances((96, 128), [[10, 10, 60, 50], [30, 40, 120, 90]], [0, 2]),
        },
        {"image": torch.rand(3, 64, 64, generator=g) * 255, "instances": gt_instances((64, 64), [], [])},
    ]


@pytest.fixture(scope="module")
def model():
    return build_fcos()


def test_defaults(model):
    assert model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    assert (model.test_score_thresh, model.test_nms_thresh, model.test_topk_candidates) == (0.2, 0.6, 1000)
    assert model.center_sampling_radius == 1.5 and model.max_detections_per_image == 100
    # One anchor point per position, represented by a box as large as the stride.
    assert model.anchor_generator.num_cell_anchors == [1] * 5
    anchors = model.anchor_generator([torch.zeros(1, 1, 2, 2)] * 5)
    torch.testing.assert_close(anchors[0].tensor[0], torch.tensor([0.0, 0.0, 8.0, 8.0]))
    torch.testing.assert_close(anchors[4].tensor[0], torch.tensor([0.0, 0.0, 128.0, 128.0]))


def test_training_losses_and_backprop(model):
    model.train()
    with EventStorage() as storage:
        losses = model(_training_inputs())
        assert storage.latest()["num_pos_anchors"][0] > 0
    assert set(losses) == {"loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr"}
    for v in losses.values():
        assert torch.isfinite(v) and v.item() > 0
    model.zero_grad()
    sum(losses.values()).backward()
    params = dict(model.named_parameters())
    for name in ("head.ctrness.weight", "head.cls_score.weight", "head.bbox_pred.weight", "head.bbox_subnet.0.weight"):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def test_no_object_batch(model):
    model.train()
    # >= 160 px: the GroupNorm of the 2x2 P7 map needs more than one value per group.
    inputs = [{"image": torch.rand(3, 160, 160) * 255, "instances": gt_instances((160, 160), [], [])}]
    with EventStorage():
        losses = model(inputs)
    assert losses["loss_fcos_loc"].item() == 0 and losses["loss_fcos_ctr"].item() == 0
    assert torch.isfinite(losses["loss_fcos_cls"]) and losses["loss_fcos_cls"] > 0


def _hand_anchors():
    def boxes(points, size):
        return Boxes(torch.tensor([[x - size / 2, y - size / 2, x + size / 2, y + size / 2] for x, y in points]))

    return [boxes([(20, 20), (4, 4), (36, 20)], 8), boxes([(24, 24)], 16), boxes([(16, 16), (150, 150)], 32)]


def test_match_anchors_hand_case(model):
    gt = Boxes(torch.tensor([[0.0, 0, 40, 40], [0, 0, 300, 300], [10, 10, 30, 30]]))
    quality = model._match_anchors(gt, _hand_anchors())
    eligible = (quality > 0).int().tolist()
    # Box 0: only the stride-8 point at its centre (the others are > 1.5 strides from
    # the centre, or their largest side distance 24 is below 4 strides of 16 / 32).
    assert eligible[0] == [1, 0, 0, 0, 0, 0]
    # Box 1 (side distances 150 > 4 * 32): only the coarsest level, near its centre.
    assert eligible[1] == [0, 0, 0, 0, 0, 1]
    assert eligible[2] == [1, 0, 0, 0, 0, 0]
    assert quality[0, 0].item() == pytest.approx(1e8 - 1600)
    # Of two boxes eligible for a point, the smaller takes it.
    inst = Instances((300, 300), gt_boxes=gt, gt_classes=torch.tensor([0, 1, 2]))
    labels, matched = model.label_anchors(_hand_anchors(), [inst])
    assert labels[0].tolist() == [2, NUM_CLASSES, NUM_CLASSES, NUM_CLASSES, NUM_CLASSES, 1]
    torch.testing.assert_close(matched[0][0], torch.tensor([10.0, 10, 30, 30]))
    labels, matched = model.label_anchors(_hand_anchors(), [gt_instances((64, 64), [], [])])
    assert labels[0].tolist() == [NUM_CLASSES] * 6 and matched[0].shape == (6, 4)


def test_centerness_targets_hand_case(model):
    anchors = [Boxes(torch.tensor([[16.0, 16, 24, 24]]))]  # the point (20, 20)
    targets = model.compute_ctrness_targets(anchors, [torch.tensor([[0.0, 0, 40, 40]]), torch.tensor([[0.0, 0, 80, 40]])])
    # Centred: 1. Second: left/right 20/60, top/bottom 20/20 -> sqrt(1/3).
    torch.testing.assert_close(targets, torch.tensor([[1.0], [math.sqrt(1 / 3)]]))


def test_inference(model):
    model.eval()
    model.test_score_thresh = 0.0
    image = torch.rand(3, 160, 192) * 255
    try:
        with torch.no_grad():
            out = model([{"image": image, "height": 80, "width": 96}])[0]["instances"]
            images = model.preprocess_image([{"image": image}])
            features = model.backbone(images.tensor)
            features = [features[f] for f in model.head_in_features]
            predictions = model.head(features)
            logits, _, ctr = predictions
            best = torch.cat([torch.sqrt(l.sigmoid() * c.sigmoid()).flatten() for l, c in zip(logits, ctr)]).max()
            raw = model.forward_inference(images, features, predictions)[0]
    finally:
        model.test_score_thresh = 0.2
    assert out.image_size == (80, 96)
    assert set(out.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
    assert 0 < len(out) <= 100
    # Scores are sqrt(class probability * centerness); the best one survives NMS.
    assert raw.image_size == (160, 192) and len(raw) == 100
    assert raw.scores[0].item() == pytest.approx(best.item(), rel=1e-5)
    assert torch.all(raw.pred_boxes.tensor[:, 2:] >= raw.pred_boxes.tensor[:, :2])


def test_fcos_head_keys_and_parameter_count():
    # Upstream's fcos_R_50_FPN_1x: 4 convs of 256 with GN, 80 classes.
    head = FCOSHead(input_shape=[ShapeSpec(channels=256)] * 5, conv_dims=[256] * 4, num_classes=80, norm="GN")
    expected = 8 * (256 * 256 * 9 + 256) + 8 * 2 * 256 + (256 * 80 * 9 + 80) + (256 * 4 * 9 + 4) + (256 * 9 + 1)
    assert sum(p.numel() for p in head.parameters()) == expected == 4_920_661
    keys = set(head.state_dict().keys())
    assert {"cls_subnet.0.weight", "cls_subnet.1.weight", "cls_subnet.9.bias", "bbox_subnet.10.weight"} <= keys
    assert {"ctrness.weight", "ctrness.bias", "cls_score.weight", "bbox_pred.bias"} <= keys
    outs = head([torch.randn(1, 256, 4, 4)] * 5)
    assert [o[0].shape[1] for o in outs] == [80, 4, 1]


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="expected 5 feature maps"):
        model.head([torch.zeros(1, 32, 8, 8)])
    with pytest.raises(ValueError, match="num_classes"):
        build_fcos_kwargs = dict(num_classes=0)
        FCOS(backbone=model.backbone, head=model.head, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3, **build_fcos_kwargs)
    model.eval()
    with pytest.raises(ValueError, match=r"must be \(C, H, W\)"):
        model([{"image": torch.rand(64, 64)}])
    model.train()
    try:
        with EventStorage(), pytest.raises(TypeError, match="gt_boxes of input 0 must be Boxes"):
            bad = Instances((160, 160), gt_boxes=torch.zeros(1, 4), gt_classes=torch.zeros(1))
            model([{"image": torch.rand(3, 160, 160), "instances": bad}])
    finally:
        model.eval()


def test_head_in_features_default_sorted_by_stride(model):
    m = FCOS(backbone=model.backbone, head=model.head, num_classes=NUM_CLASSES, pixel_mean=[0.0] * 3, pixel_std=[1.0] * 3)
    assert m.head_in_features == ["p3", "p4", "p5", "p6", "p7"]


@pytest.mark.cuda
def test_cuda_training_and_parity():
    cpu_model = build_fcos("cpu").eval()
    cuda_model = build_fcos("cuda").eval()
    cuda_model.load_state_dict(cpu_model.state_dict())
    cpu_model.test_score_thresh = cuda_model.test_score_thresh = 0.0
    image = torch.rand(3, 256, 256) * 255  # p7 of 2x2: torch < 2.14's group_norm refuses 1x1 with one image
    old_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            a = cpu_model([{"image": image}])[0]["instances"]
            b = cuda_model([{"image": image}])[0]["instances"]
    finally:
        torch.backends.cudnn.allow_tf32 = old_tf32
    n = min(len(a), len(b), 10)
    assert n > 0
    torch.testing.assert_close(b.scores.cpu()[:n], a.scores[:n], rtol=1e-3, atol=1e-4)
    cuda_model.train()
    inputs = [
        {"image": torch.rand(3, 256, 256) * 255, "instances": gt_instances((256, 256), [[10, 10, 120, 100]], [1])},
        {"image": torch.rand(3, 256, 256) * 255, "instances": gt_instances((256, 256), [], [])},
    ]
    with EventStorage():
        losses = cuda_model(inputs)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())

"""RetinaNet, RetinaNetHead and the DenseDetector machinery, on a ResNet-18 FPN and
small images."""
import math

import pytest
import torch
from dense_toys import gt_instances, r18_fpn_cfg

from detectron2.config import get_cfg
from detectron2.layers import CycleBatchNormList, ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, RetinaNet, build_model
from detectron2.modeling.meta_arch.dense_detector import permute_to_N_HWA_K, sigmoid_focal_loss
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

NUM_CLASSES = 5


def tiny_retinanet_cfg(device: str = "cpu"):
    cfg = r18_fpn_cfg("build_retinanet_resnet_fpn_backbone", ["res3", "res4", "res5"], 16, device)
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    cfg.MODEL.RETINANET.NUM_CONVS = 2
    cfg.MODEL.RETINANET.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]]
    return cfg


def _training_inputs():
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.rand(3, 96, 128, generator=g) * 255,
            "instances": gt_instances((96, 128), [[10, 10, 60, 50], [30, 40, 120, 90]], [1, 3]),
        },
        # An image without any object: all anchors are background.
        {"image": torch.rand(3, 80, 100, generator=g) * 255, "instances": gt_instances((80, 100), [], [])},
    ]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_retinanet_cfg())


def test_registered_and_built_from_cfg(model):
    assert META_ARCH_REGISTRY.get("RetinaNet") is RetinaNet
    assert isinstance(model, RetinaNet)
    assert model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    assert model.num_classes == NUM_CLASSES
    assert model.anchor_generator.num_cell_anchors == [9] * 5
    assert (model.focal_loss_alpha, model.focal_loss_gamma, model.smooth_l1_beta) == (0.25, 2.0, 0.1)
    assert (model.test_score_thresh, model.test_topk_candidates, model.test_nms_thresh) == (0.05, 1000, 0.5)
    assert model.max_detections_per_image == 100
    assert model.device == torch.device("cpu")


def test_training_losses_finite_and_backprop(model):
    model.train()
    with EventStorage() as storage:
        losses = model(_training_inputs())
        assert storage.latest()["num_pos_anchors"][0] > 0
    assert set(losses) == {"loss_cls", "loss_box_reg"}
    for v in losses.values():
        assert torch.isfinite(v) and v.item() > 0
    model.zero_grad()
    sum(losses.values()).backward()
    for name in ("head.cls_score.weight", "head.bbox_pred.weight", "backbone.bottom_up.res3.0.conv1.weight"):
        param = dict(model.named_parameters())[name]
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("loss_type", ["giou", "diou", "ciou"])
def test_iou_box_losses(model, loss_type):
    model.train()
    old = model.box_reg_loss_type
    model.box_reg_loss_type = loss_type
    try:
        with EventStorage():
            losses = model(_training_inputs())
    finally:
        model.box_reg_loss_type = old
    assert torch.isfinite(losses["loss_box_reg"]) and losses["loss_box_reg"] > 0


def test_loss_normalizer_is_ema(model):
    model.train()
    with EventStorage() as storage:
        if hasattr(model, "loss_normalizer"):
            del model.loss_normalizer
        model(_training_inputs())
        num_pos = storage.latest()["num_pos_anchors"][0] * 2  # logged per image, 2 images
    assert model.loss_normalizer == pytest.approx(100 * 0.9 + num_pos * 0.1)


def test_inference_fields_and_rescale(model):
    model.eval()
    image = torch.rand(3, 96, 128) * 255
    with torch.no_grad():
        out = model([{"image": image, "height": 192, "width": 256}, {"image": image}])
    assert len(out) == 2
    big, same = out[0]["instances"], out[1]["instances"]
    assert big.image_size == (192, 256) and same.image_size == (96, 128)
    assert set(big.get_fields()) == {"pred_boxes", "scores", "pred_classes"}
    assert len(same) <= 100
    if len(same):
        assert (same.scores >= 0.05).all()
        assert same.pred_classes.dtype == torch.int64 and same.pred_classes.max() < NUM_CLASSES
        torch.testing.assert_close(big.pred_boxes.tensor, same.pred_boxes.tensor * 2)


def test_inference_max_detections_and_thresh(model):
    model.eval()
    old = (model.test_score_thresh, model.max_detections_per_image)
    model.test_score_thresh, model.max_detections_per_image = 0.0, 7
    try:
        with torch.no_grad():
            out = model([{"image": torch.rand(3, 64, 64) * 255}])[0]["instances"]
    finally:
        model.test_score_thresh, model.max_detections_per_image = old
    assert len(out) == 7
    assert torch.all(out.scores[:-1] >= out.scores[1:])


def test_non_contiguous_image_same_result(model):
    model.eval()
    image = torch.rand(3, 64, 96) * 255
    strided = image.transpose(1, 2).contiguous().transpose(1, 2)
    assert not strided.is_contiguous()
    with torch.no_grad():
        a = model([{"image": image}])[0]["instances"]
        b = model([{"image": strided}])[0]["instances"]
    torch.testing.assert_close(a.pred_boxes.tensor, b.pred_boxes.tensor)
    torch.testing.assert_close(a.scores, b.scores)


def test_label_anchors_hand_case(model):
    anchors = [Boxes(torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 7], [0, 0, 20, 20]])), Boxes(torch.tensor([[50.0, 50, 60, 60]]))]
    gt = gt_instances((64, 64), [[0, 0, 10, 10]], [2])
    labels, boxes = model.label_anchors(anchors, [gt])
    # IoUs 1.0 (fg), 0.7 (fg), 0.25 (bg), 0 (bg)
    assert labels[0].tolist() == [2, 2, NUM_CLASSES, NUM_CLASSES]
    torch.testing.assert_close(boxes[0][0], torch.tensor([0.0, 0, 10, 10]))
    # IoU 0.45 is between the thresholds (0.4, 0.5): ignored.
    labels, _ = model.label_anchors([Boxes(torch.tensor([[0.0, 0, 10, 4.5], [0, 0, 10, 10]]))], [gt])
    assert labels[0].tolist() == [-1, 2]
    labels, boxes = model.label_anchors(anchors, [gt_instances((64, 64), [], [])])
    assert labels[0].tolist() == [NUM_CLASSES] * 4 and boxes[0].shape == (4, 4)


def test_decode_per_level_predictions(model):
    anchors = Boxes(torch.tensor([[0.0, 0, 10, 10], [20, 20, 40, 40], [5, 5, 15, 25]]))
    scores = torch.tensor([[0.1, 0.9], [0.6, 0.02], [0.3, 0.7]])
    deltas = torch.zeros(3, 4)
    inst = model._decode_per_level_predictions(anchors, scores, deltas, 0.25, 3, (50, 50))
    assert inst.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert inst.pred_classes.tolist() == [1, 1, 0]
    torch.testing.assert_close(inst.pred_boxes.tensor, anchors.tensor[[0, 2, 1]])
    merged = model._decode_multi_level_predictions([anchors, anchors], [scores, scores], [deltas, deltas], 0.65, 1, (50, 50))
    assert merged.scores.tolist() == pytest.approx([0.9, 0.9])


def test_permute_to_N_HWA_K():
    n, a, k, h, w = 2, 3, 4, 5, 6
    t = torch.arange(n * a * k * h * w).reshape(n, a * k, h, w)
    out = permute_to_N_HWA_K(t, k)
    assert out.shape == (n, h * w * a, k)
    # Row (y, x, anchor) holds channels anchor*K .. anchor*K + K - 1 at that position.
    y, x, anc = 3, 2, 1
    assert out[1, (y * w + x) * a + anc].tolist() == t[1, anc * k : (anc + 1) * k, y, x].tolist()
    with pytest.raises(ValueError, match="N, A\\*K, H, W"):
        permute_to_N_HWA_K(torch.zeros(2, 3, 4), 1)


def test_sigmoid_focal_loss_hand_case():
    logits = torch.zeros(2)
    targets = torch.tensor([1.0, 0.0])
    loss = sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)
    # p = 0.5 for both: ce = ln 2, (1 - p_t)^2 = 1/4, alpha_t = 0.25 / 0.75.
    expected = torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * 0.25 * math.log(2)])
    torch.testing.assert_close(loss, expected)
    assert sigmoid_focal_loss(logits, targets, alpha=-1, gamma=0, reduction="sum").item() == pytest.approx(2 * math.log(2))
    with pytest.raises(ValueError, match="reduction"):
        sigmoid_focal_loss(logits, targets, reduction="avg")


def test_sigmoid_focal_loss_matches_fvcore():
    import fvcore.nn as fvcore_nn
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, 7, generator=g) * 3
    t = (torch.rand(50, 7, generator=g) > 0.8).float()
    for alpha, gamma in ((0.25, 2.0), (-1, 1.5)):
        for reduction in ("none", "sum", "mean"):
            torch.testing.assert_close(
                sigmoid_focal_loss(x, t, alpha, gamma, reduction),
                fvcore_nn.sigmoid_focal_loss(x, t, alpha, gamma, reduction),
            )


# Facts of upstream's RetinaNet R50-FPN (COCO, 80 classes, 9 anchors, 4 convs of 256):
# 8 tower convs of 256*256*9 + 256, cls_score 256*720*9 + 720, bbox_pred 256*36*9 + 36.
R50_HEAD_PARAMS = 8 * (256 * 256 * 9 + 256) + (256 * 720 * 9 + 720) + (256 * 36 * 9 + 36)
R50_HEAD_KEYS = sorted(
    [f"{tower}.{i}.{p}" for tower in ("cls_subnet", "bbox_subnet") for i in (0, 2, 4, 6) for p in ("weight", "bias")]
    + [f"{conv}.{p}" for conv in ("cls_score", "bbox_pred") for p in ("weight", "bias")]
)


def _r50_cfg():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    cfg.MODEL.BACKBONE.NAME = "build_retinanet_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)] for x in [32, 64, 128, 256, 512]]
    return cfg


def test_head_parameter_count_and_keys_equal_upstream():
    cfg = _r50_cfg()
    head = RetinaNetHead(cfg, [ShapeSpec(channels=256, stride=2 ** i) for i in range(3, 8)])
    assert R50_HEAD_PARAMS == 6_463_220
    assert sum(p.numel() for p in head.parameters()) == R50_HEAD_PARAMS
    assert sorted(head.state_dict().keys()) == R50_HEAD_KEYS
    # Prior-probability init: every class starts at probability 0.01.
    torch.testing.assert_close(torch.sigmoid(head.cls_score.bias), torch.full((720,), 0.01))
    assert head.bbox_pred.bias.abs().sum() == 0


def test_full_r50_model_parameter_count():
    # torchvision's retinanet_resnet50_fpn has 34,014,999 parameters with 91 classes and
    # P6 computed from P5 (256 channels); upstream's has 80 classes and P6 from C5 (2048).
    model = build_model(_r50_cfg())
    expected = 34_014_999 - (256 * 9 * 9 * 11 + 9 * 11) + (2048 - 256) * 256 * 9
    assert sum(p.numel() for p in model.parameters()) == expected == 37_915_572
    keys = model.state_dict().keys()
    assert "head.cls_subnet.0.weight" in keys and "backbone.fpn_lateral3.weight" in keys
    assert "backbone.top_block.p6.weight" in keys and "pixel_mean" not in keys


@pytest.mark.parametrize("norm", ["BN", "SyncBN", "GN"])
def test_head_norms(norm):
    shapes = [ShapeSpec(channels=32, stride=2 ** i) for i in range(3, 6)]
    head = RetinaNetHead(input_shape=shapes, num_classes=3, num_anchors=2, conv_dims=[32, 32], norm=norm)
    keys = set(head.state_dict().keys())
    # conv, norm, relu per stage: convs at 0 and 3, norms at 1 and 4.
    assert {"cls_subnet.0.weight", "cls_subnet.3.weight", "bbox_subnet.4.weight"} <= keys
    if norm == "GN":
        assert isinstance(head.cls_subnet[1], torch.nn.GroupNorm)
    else:
        # Per-level statistics, shared affine parameters.
        assert isinstance(head.cls_subnet[1], CycleBatchNormList) and len(head.cls_subnet[1]) == 3
        assert "cls_subnet.1.2.running_mean" in keys and "cls_subnet.1.weight" in keys
    if norm != "SyncBN":  # SyncBatchNorm needs a process group to run
        feats = [torch.randn(2, 32, s, s) for s in (8, 4, 2)]
        logits, deltas = head(feats)
        assert [x.shape for x in logits] == [(2, 6, s, s) for s in (8, 4, 2)]
        assert [x.shape for x in deltas] == [(2, 8, s, s) for s in (8, 4, 2)]


def test_bad_inputs(model):
    model.eval()
    with pytest.raises(ValueError, match=r"\['image'\] must be \(C, H, W\)"):
        model([{"image": torch.rand(1, 3, 64, 64)}])
    with pytest.raises(TypeError, match="'image'"):
        model([{"img": torch.rand(3, 64, 64)}])
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        model([{"image": [[1.0]]}])
    with pytest.raises(TypeError, match="non-empty list"):
        model([])
    with pytest.raises(ValueError, match="expected 5 feature maps"):
        model.head([torch.zeros(1, 16, 8, 8)])
    model.train()
    try:
        with EventStorage():
            with pytest.raises(ValueError, match="needs 'instances'"):
                model([{"image": torch.rand(3, 64, 64)}])
            bad = Instances((64, 64), gt_boxes=Boxes(torch.zeros(1, 4)))
            with pytest.raises(ValueError, match="gt_classes"):
                model([{"image": torch.rand(3, 64, 64), "instances": bad}])
    finally:
        model.eval()
    kwargs = RetinaNet.from_config(tiny_retinanet_cfg())
    with pytest.raises(ValueError, match="box_reg_loss_type"):
        RetinaNet(**{**kwargs, "box_reg_loss_type": "l2"})
    with pytest.raises(ValueError, match="num_classes"):
        RetinaNet(**{**kwargs, "num_classes": 0})
    with pytest.raises(ValueError, match="pixel_mean"):
        RetinaNet(**{**kwargs, "pixel_std": [1.0]})


@pytest.mark.cuda
def test_cpu_cuda_parity():
    torch.manual_seed(0)
    cpu_model = build_model(tiny_retinanet_cfg("cpu")).eval()
    cuda_model = build_model(tiny_retinanet_cfg("cuda")).eval()
    cuda_model.load_state_dict(cpu_model.state_dict())
    assert cuda_model.device.type == "cuda"
    cpu_model.test_score_thresh = cuda_model.test_score_thresh = 0.0  # compare 100 detections, not none
    image = torch.rand(3, 96, 128) * 255
    old_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # TF32 convolutions differ from CPU by ~1e-2
    try:
        with torch.no_grad():
            a = cpu_model([{"image": image}])[0]["instances"]
            b = cuda_model([{"image": image}])[0]["instances"]
    finally:
        torch.backends.cudnn.allow_tf32 = old_tf32
    assert b.pred_boxes.device.type == "cuda" and len(a) > 20
    torch.testing.assert_close(b.scores.cpu()[:20], a.scores[:20], rtol=1e-3, atol=1e-4)
    cuda_model.train()
    inputs = _training_inputs()
    with EventStorage():
        losses = cuda_model(inputs)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())


def test_visualize_training_stores_gt_above_detections(model):
    model.eval()
    inputs = _training_inputs()[:1]
    old = model.test_score_thresh
    model.test_score_thresh = 0.0
    try:
        with torch.no_grad():
            images = model.preprocess_image(inputs)
            features = model.backbone(images.tensor)
            features = [features[f] for f in model.head_in_features]
            results = model.forward_inference(images, features, model.head(features))
    finally:
        model.test_score_thresh = old
    with EventStorage() as storage:
        model.visualize_training(inputs, results)
        (name, image, _), = storage._vis_data
    assert name.startswith("Top: GT bounding boxes")
    assert tuple(image.shape) == (3, 2 * 96, 128)  # CHW, the two views stacked vertically
    with pytest.raises(ValueError, match="differ in length"):
        model.visualize_training(inputs, results * 2)

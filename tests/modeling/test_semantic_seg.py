"""SemanticSegmentor and SemSegFPNHead on a ResNet-18 FPN with small images."""
import math

import pytest
import torch
from dense_toys import r18_fpn_cfg
from torch.nn import functional as F

from detectron2.layers import ShapeSpec
from detectron2.modeling import (
    META_ARCH_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    SemanticSegmentor,
    build_model,
    build_sem_seg_head,
)
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

NUM_CLASSES = 4


def tiny_sem_seg_cfg(device="cpu"):
    cfg = r18_fpn_cfg("build_resnet_fpn_backbone", ["res2", "res3", "res4", "res5"], 32, device)
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = NUM_CLASSES
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    cfg.MODEL.SEM_SEG_HEAD.NORM = "GN"
    cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 0.5
    return cfg


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_sem_seg_cfg())


def _inputs(with_targets=True):
    g = torch.Generator().manual_seed(0)
    inputs = [{"image": torch.rand(3, 64, 96, generator=g) * 255}, {"image": torch.rand(3, 70, 60, generator=g) * 255}]
    if with_targets:
        for x in inputs:
            h, w = x["image"].shape[1:]
            x["sem_seg"] = torch.randint(0, NUM_CLASSES, (h, w), generator=g)
    return inputs


def test_registries_and_config(model):
    assert META_ARCH_REGISTRY.get("SemanticSegmentor") is SemanticSegmentor
    assert SEM_SEG_HEADS_REGISTRY.get("SemSegFPNHead") is SemSegFPNHead
    head = model.sem_seg_head
    assert isinstance(head, SemSegFPNHead)
    assert head.in_features == ["p2", "p3", "p4", "p5"]
    assert (head.ignore_value, head.common_stride, head.loss_weight) == (255, 4, 0.5)


def test_state_dict_keys(model):
    keys = {k for k in model.state_dict() if k.startswith("sem_seg_head.")}
    # Per level: conv (no bias with a norm) [+ upsample] repeated down to stride 4.
    expected = {"sem_seg_head.predictor.weight", "sem_seg_head.predictor.bias"}
    for level, conv_indices in (("p2", [0]), ("p3", [0]), ("p4", [0, 2]), ("p5", [0, 2, 4])):
        for i in conv_indices:
            expected |= {f"sem_seg_head.{level}.{i}.weight", f"sem_seg_head.{level}.{i}.norm.weight",
                         f"sem_seg_head.{level}.{i}.norm.bias"}
    assert keys == expected


def test_panoptic_fpn_head_parameter_count_equals_upstream():
    # Upstream's Panoptic FPN R50 semantic head: 54 classes, 128 dims, GN, p2-p5 of 256.
    shapes = {f"p{i}": ShapeSpec(channels=256, stride=2 ** i) for i in range(2, 6)}
    head = SemSegFPNHead(shapes, num_classes=54, conv_dims=128, common_stride=4, norm="GN", ignore_value=255)
    first = 256 * 128 * 9 + 2 * 128
    later = 128 * 128 * 9 + 2 * 128
    expected = first * 4 + later * (1 + 2) + (128 * 54 + 54)
    assert sum(p.numel() for p in head.parameters()) == expected == 1_630_774


def test_training_loss_and_backprop(model):
    model.train()
    losses = model(_inputs())
    assert set(losses) == {"loss_sem_seg"}
    loss = losses["loss_sem_seg"]
    assert torch.isfinite(loss) and loss.item() > 0
    model.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    for name in ("sem_seg_head.predictor.weight", "sem_seg_head.p5.4.weight", "backbone.fpn_output2.weight"):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def test_inference_output_sizes(model):
    model.eval()
    inputs = _inputs(with_targets=False)
    inputs[0]["height"], inputs[0]["width"] = 32, 48
    with torch.no_grad():
        out = model(inputs)
    assert out[0]["sem_seg"].shape == (NUM_CLASSES, 32, 48)
    assert out[1]["sem_seg"].shape == (NUM_CLASSES, 70, 60)
    # Eval with targets still returns predictions only.
    with torch.no_grad():
        out = model(_inputs())
    assert set(out[0]) == {"sem_seg"}


def test_loss_hand_case_ignore_and_weight():
    shapes = {"p2": ShapeSpec(channels=8, stride=4)}
    head = SemSegFPNHead(shapes, num_classes=3, conv_dims=8, common_stride=4, loss_weight=2.0, ignore_value=255)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 2, 2, generator=g)
    targets = torch.full((1, 8, 8), 255, dtype=torch.int64)
    targets[0, 1, 2], targets[0, 6, 5] = 1, 2
    up = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)[0]
    expected = 0.5 * (
        -torch.log_softmax(up[:, 1, 2], 0)[1] - torch.log_softmax(up[:, 6, 5], 0)[2]
    )
    loss = head.losses(logits, targets)["loss_sem_seg"]
    torch.testing.assert_close(loss, 2.0 * expected)


def test_targets_padded_with_ignore_value(model):
    head = model.sem_seg_head
    seen = {}
    original = head.losses

    def spy(predictions, targets):
        seen["targets"] = targets
        return original(predictions, targets)

    head.losses = spy
    model.train()
    try:
        model(_inputs())
    finally:
        del head.losses
    targets = seen["targets"]
    assert targets.shape == (2, 96, 96)  # padded to the FPN's size divisibility of 32
    assert (targets[0, 64:] == 255).all() and (targets[1, :, 60:] == 255).all()
    assert (targets[1, :70, :60] < NUM_CLASSES).all()


def test_build_sem_seg_head_filters_in_features():
    cfg = tiny_sem_seg_cfg()
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["p3", "p4"]
    shapes = {f"p{i}": ShapeSpec(channels=32, stride=2 ** i) for i in range(2, 7)}
    head = build_sem_seg_head(cfg, shapes)
    assert head.in_features == ["p3", "p4"]
    feats = {f"p{i}": torch.randn(1, 32, 64 // 2 ** i, 64 // 2 ** i) for i in range(2, 7)}
    head.eval()
    logits, losses = head(feats)
    assert logits.shape == (1, NUM_CLASSES, 64, 64) and losses == {}


def test_bad_inputs(model):
    model.train()
    try:
        with pytest.raises(ValueError, match="needs 'sem_seg'"):
            model(_inputs(with_targets=False))
        bad = _inputs()
        bad[0]["sem_seg"] = bad[0]["sem_seg"].float()
        with pytest.raises(TypeError, match="integer class ids"):
            model(bad)
        bad = _inputs()
        bad[1]["sem_seg"] = bad[1]["sem_seg"][None]
        with pytest.raises(ValueError, match=r"\(H, W\) label map"):
            model(bad)
    finally:
        model.eval()
    with pytest.raises(ValueError, match=r"must be \(C, H, W\)"):
        model([{"image": torch.rand(64, 64)}])
    with pytest.raises(ValueError, match="cannot be empty"):
        SemSegFPNHead({}, num_classes=2, conv_dims=8, common_stride=4)
    head = model.sem_seg_head
    with pytest.raises(ValueError, match=r"features \['p5'\] are missing"):
        head.layers({f"p{i}": torch.zeros(1, 32, 4, 4) for i in (2, 3, 4)})
    head.train()
    try:
        with pytest.raises(ValueError, match="targets are required"):
            head({f"p{i}": torch.zeros(2, 32, 2 ** (6 - i), 2 ** (6 - i)) for i in (2, 3, 4, 5)})
    finally:
        head.eval()


def test_non_contiguous_image_same_result(model):
    model.eval()
    image = torch.rand(3, 64, 64) * 255
    strided = image.transpose(1, 2).contiguous().transpose(1, 2)
    with torch.no_grad():
        a = model([{"image": image}])[0]["sem_seg"]
        b = model([{"image": strided}])[0]["sem_seg"]
    torch.testing.assert_close(a, b)
    assert math.isfinite(a.sum().item())


@pytest.mark.cuda
def test_cpu_cuda_parity():
    torch.manual_seed(0)
    cpu_model = build_model(tiny_sem_seg_cfg("cpu")).eval()
    cuda_model = build_model(tiny_sem_seg_cfg("cuda")).eval()
    cuda_model.load_state_dict(cpu_model.state_dict())
    inputs = _inputs(with_targets=False)
    old_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            a = cpu_model(inputs)[0]["sem_seg"]
            b = cuda_model(inputs)[0]["sem_seg"]
    finally:
        torch.backends.cudnn.allow_tf32 = old_tf32
    torch.testing.assert_close(b.cpu(), a, rtol=1e-3, atol=1e-3)
    cuda_model.train()
    loss = cuda_model(_inputs())["loss_sem_seg"]
    loss.backward()
    assert torch.isfinite(loss)

import pytest
import torch
import torchvision

from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import (
    BACKBONE_REGISTRY,
    FPN,
    Backbone,
    BasicStem,
    BottleneckBlock,
    ResNet,
    ResNetBlockBase,
    build_backbone,
    build_resnet_backbone,
    make_stage,
)
from detectron2.modeling.backbone.fpn import LastLevelMaxPool, LastLevelP6P7
from detectron2.modeling.backbone.resnet import BasicBlock, DeformBottleneckBlock


def _fpn_cfg(depth=50, name="build_resnet_fpn_backbone"):
    """get_cfg() with the backbone settings of upstream's Base-RCNN-FPN.yaml."""
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    return cfg


def _learnable_count(state_dict, prefix="bottom_up."):
    # FrozenBN keeps weight/bias as buffers; running statistics are not parameters.
    return sum(
        v.numel() for k, v in state_dict.items()
        if k.startswith(prefix) and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )


def _torchvision_count(model):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("fc."))


def test_r50_fpn_state_dict_names_follow_upstream():
    keys = set(build_backbone(_fpn_cfg()).state_dict())
    expected = {
        "bottom_up.stem.conv1.weight",
        "bottom_up.stem.conv1.norm.weight",
        "bottom_up.stem.conv1.norm.bias",
        "bottom_up.stem.conv1.norm.running_mean",
        "bottom_up.stem.conv1.norm.running_var",
        "bottom_up.res2.0.shortcut.weight",
        "bottom_up.res2.0.shortcut.norm.weight",
        "bottom_up.res2.0.conv1.weight",
        "bottom_up.res2.2.conv3.norm.bias",
        "bottom_up.res4.5.conv2.weight",
        "bottom_up.res5.2.conv3.weight",
        "fpn_lateral2.weight",
        "fpn_lateral5.bias",
        "fpn_output2.weight",
        "fpn_output5.bias",
    }
    assert expected <= keys
    # No duplicates under other names (e.g. a ModuleList of the same convs).
    assert not any(k.startswith(("lateral_convs", "output_convs")) for k in keys)
    assert "bottom_up.res2.1.shortcut.weight" not in keys  # identity shortcut
    assert not any(k.startswith("top_block") for k in keys)  # max pool: no weights
    assert len([k for k in keys if k.startswith("fpn_")]) == 16
    # 53 conv+norm pairs (1 stem, 16 blocks x 3, 4 shortcuts) x (weight + 4 norm entries).
    assert len([k for k in keys if k.startswith("bottom_up.")]) == 53 * 5


@pytest.mark.parametrize("depth,tv", [(50, torchvision.models.resnet50), (101, torchvision.models.resnet101)])
def test_resnet_parameter_counts_equal_torchvision(depth, tv):
    sd = build_backbone(_fpn_cfg(depth)).state_dict()
    assert _learnable_count(sd) == _torchvision_count(tv())


@pytest.mark.parametrize("depth,tv", [(18, torchvision.models.resnet18), (34, torchvision.models.resnet34)])
def test_basic_block_resnets_parameter_counts(depth, tv):
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    model = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    assert all(isinstance(b, BasicBlock) for s in model.stages for b in s)
    assert sum(p.numel() for p in model.parameters()) == _torchvision_count(tv())


def test_fpn_outputs_shapes_and_strides():
    model = build_backbone(_fpn_cfg()).eval()
    assert isinstance(model, FPN) and isinstance(model, Backbone)
    assert model.size_divisibility == 32
    assert model.padding_constraints == {"square_size": 0}
    shapes = model.output_shape()
    assert list(shapes) == ["p2", "p3", "p4", "p5", "p6"]
    assert [s.stride for s in shapes.values()] == [4, 8, 16, 32, 64]
    assert all(s.channels == 256 for s in shapes.values())
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 192))
    for name, stride in zip(["p2", "p3", "p4", "p5", "p6"], [4, 8, 16, 32, 64]):
        assert out[name].shape == (2, 256, 128 // stride, 192 // stride)


def test_fpn_matches_hand_computed_top_down_pass():
    cfg = _fpn_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    model = build_backbone(cfg).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        c = model.bottom_up(x)
        top = model.fpn_lateral5(c["res5"])
        p = {5: model.fpn_output5(top)}
        for s in (4, 3, 2):
            top = getattr(model, f"fpn_lateral{s}")(c[f"res{s}"]) + torch.nn.functional.interpolate(
                top, scale_factor=2.0, mode="nearest"
            )
            p[s] = getattr(model, f"fpn_output{s}")(top)
    for s in (2, 3, 4, 5):
        torch.testing.assert_close(out[f"p{s}"], p[s])
    torch.testing.assert_close(out["p6"], p[5][:, :, ::2, ::2])


def test_fpn_avg_fuse_halves_the_sum():
    cfg = _fpn_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 8
    torch.manual_seed(0)
    summed = build_backbone(cfg).eval()
    cfg.MODEL.FPN.FUSE_TYPE = "avg"
    averaged = build_backbone(cfg).eval()
    averaged.load_state_dict(summed.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, s = averaged(x), summed(x)
    torch.testing.assert_close(a["p5"], s["p5"])  # no fusion at the top level
    assert not torch.allclose(a["p4"], s["p4"])


def test_retinanet_fpn_has_p3_to_p7():
    cfg = _fpn_cfg(name="build_retinanet_resnet_fpn_backbone")
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    model = build_backbone(cfg).eval()
    keys = set(model.state_dict())
    assert {"top_block.p6.weight", "top_block.p6.bias", "top_block.p7.weight", "fpn_lateral3.weight"} <= keys
    assert model.top_block.p6.in_channels == 2048
    assert "bottom_up.res2.0.conv1.weight" in keys  # res2 exists, it is just not an output
    shapes = model.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}
    with torch.no_grad():
        out = model(torch.randn(1, 3, 128, 128))
    assert out["p7"].shape == (1, 256, 1, 1)


def test_last_level_blocks():
    assert LastLevelMaxPool().num_levels == 1 and LastLevelMaxPool().in_feature == "p5"
    x = torch.randn(1, 4, 5, 7)
    (p6,) = LastLevelMaxPool()(x)
    torch.testing.assert_close(p6, x[:, :, ::2, ::2])
    block = LastLevelP6P7(4, 6, in_feature="p5")
    p6, p7 = block(x)
    assert block.in_feature == "p5" and p6.shape == (1, 6, 3, 4) and p7.shape == (1, 6, 2, 2)


def test_freeze_at():
    cfg = _fpn_cfg()
    cfg.MODEL.BACKBONE.FREEZE_AT = 2
    bottom_up = build_backbone(cfg).bottom_up
    assert all(not p.requires_grad for p in bottom_up.stem.parameters())
    assert all(not p.requires_grad for p in bottom_up.res2.parameters())
    assert all(p.requires_grad for p in bottom_up.res3.parameters())

    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 3
    bottom_up = build_backbone(cfg).bottom_up
    # Frozen blocks get FrozenBatchNorm2d even when built with BN.
    assert isinstance(bottom_up.res3[0].conv1.norm, FrozenBatchNorm2d)
    assert isinstance(bottom_up.res4[0].conv1.norm, torch.nn.BatchNorm2d)
    assert all(not p.requires_grad for p in bottom_up.res3.parameters())

    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    bottom_up = build_backbone(cfg).bottom_up
    assert all(p.requires_grad for p in bottom_up.parameters())


def test_resnet_out_features_limit_stages_and_default_config():
    cfg = get_cfg()  # C4 default: res4 only, frozen BN, stride in 1x1
    model = build_backbone(cfg)
    assert model.stage_names == ("res2", "res3", "res4")
    assert not hasattr(model, "res5")
    assert model.output_shape() == {"res4": ShapeSpec(channels=1024, stride=16)}
    assert model.res3[0].conv1.stride == (2, 2) and model.res3[0].conv2.stride == (1, 1)
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    model = build_backbone(cfg)
    assert model.res3[0].conv1.stride == (1, 1) and model.res3[0].conv2.stride == (2, 2)


def test_resnext_and_res5_dilation():
    cfg = _fpn_cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res5"]
    cfg.MODEL.RESNETS.NUM_GROUPS = 32
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 8
    cfg.MODEL.RESNETS.RES5_DILATION = 2
    model = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    conv = model.res2[0].conv2
    assert conv.groups == 32 and conv.out_channels == 256
    assert model.res5[0].conv2.out_channels == 256 * 8
    assert model.res5[1].conv2.dilation == (2, 2) and model.res5[1].conv2.padding == (2, 2)
    assert model.output_shape()["res5"].stride == 16
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))["res5"].shape == (1, 2048, 4, 4)


def test_stem_and_input_channels():
    cfg = get_cfg()
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 32
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 128
    cfg.MODEL.PIXEL_MEAN = [0.0]
    cfg.MODEL.PIXEL_STD = [1.0]
    model = build_backbone(cfg)
    assert model.stem.conv1.in_channels == 1 and model.stem.out_channels == 32
    assert model.res2[0].conv1.in_channels == 32 and model.res2[0].out_channels == 128
    assert model.res3[0].out_channels == 256


def test_bad_resnet_configs_raise():
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 42
    with pytest.raises(ValueError, match="DEPTH"):
        build_backbone(cfg)
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 18  # RES2_OUT_CHANNELS stays 256
    with pytest.raises(ValueError, match="RES2_OUT_CHANNELS"):
        build_backbone(cfg)
    cfg = get_cfg()
    cfg.MODEL.RESNETS.RES5_DILATION = 3
    with pytest.raises(ValueError, match="RES5_DILATION"):
        build_backbone(cfg)
    cfg = get_cfg()
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4", "res6"]
    with pytest.raises(KeyError):
        build_backbone(cfg)
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "no_such_backbone"
    with pytest.raises(KeyError):
        build_backbone(cfg)
    model = build_backbone(get_cfg())
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        model(torch.randn(3, 32, 32))


def test_fpn_rejects_bad_arguments():
    bottom_up = build_backbone(_fpn_cfg()).bottom_up
    with pytest.raises(ValueError, match="fuse_type"):
        FPN(bottom_up, ["res2", "res3"], 8, fuse_type="max")
    with pytest.raises(ValueError, match="double"):
        FPN(bottom_up, ["res2", "res4"], 8)
    with pytest.raises(ValueError, match="res6"):
        FPN(bottom_up, ["res5", "res6"], 8)
    with pytest.raises(TypeError, match="bottom_up"):
        FPN(torch.nn.Conv2d(3, 3, 1), ["res2"], 8)


def test_make_stage_and_resnet_with_classifier():
    stage = make_stage(
        BottleneckBlock, 3, in_channels=16, out_channels=32, bottleneck_channels=8,
        stride_per_block=[2, 1, 1], norm="BN",
    )
    assert [b.stride for b in stage] == [2, 1, 1]
    assert stage[0].in_channels == 16 and stage[1].in_channels == 32
    assert stage[0].shortcut is not None and stage[1].shortcut is None
    with pytest.raises(ValueError, match="stride_per_block"):
        make_stage(BottleneckBlock, 2, in_channels=4, out_channels=4, bottleneck_channels=2, stride_per_block=[1])
    assert ResNetBlockBase is type(stage[0]).__mro__[1]

    stages = ResNet.make_default_stages(18)
    assert [len(s) for s in stages] == [2, 2, 2, 2]
    model = ResNet(BasicStem(3, 64, norm="BN"), stages, num_classes=10, out_features=["res3", "linear"]).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out["linear"].shape == (2, 10) and out["res3"].shape == (2, 128, 8, 8)
    assert "BACKBONE" in repr(BACKBONE_REGISTRY) or len(list(BACKBONE_REGISTRY)) >= 3


def _copy_into_bottleneck(deform_block, scale):
    plain = BottleneckBlock(64, 256, bottleneck_channels=64, norm="BN").eval()
    sd = {k: v for k, v in deform_block.state_dict().items() if not k.startswith("conv2_offset")}
    sd["conv2.weight"] = sd["conv2.weight"] * scale
    plain.load_state_dict(sd)
    return plain


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_block_starts_as_a_regular_bottleneck(modulated):
    torch.manual_seed(0)
    block = DeformBottleneckBlock(
        64, 256, bottleneck_channels=64, norm="BN", deform_modulated=modulated
    ).eval()
    assert block.conv2_offset.out_channels == (27 if modulated else 18)
    assert torch.count_nonzero(block.conv2_offset.weight) == 0
    # Zero offsets make it a plain conv; the modulated mask is sigmoid(0) = 0.5 everywhere.
    plain = _copy_into_bottleneck(block, 0.5 if modulated else 1.0)
    x = torch.randn(2, 64, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(block(x), plain(x), rtol=1e-4, atol=1e-4)


def test_deformable_stages_from_config():
    cfg = _fpn_cfg()
    cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, True, False, True]
    cfg.MODEL.RESNETS.DEFORM_MODULATED = True
    cfg.MODEL.RESNETS.DEFORM_NUM_GROUPS = 2
    model = build_backbone(cfg).eval()
    keys = set(model.state_dict())
    assert "bottom_up.res3.0.conv2_offset.weight" in keys and "bottom_up.res3.0.conv2_offset.bias" in keys
    assert "bottom_up.res2.0.conv2_offset.weight" not in keys
    assert model.bottom_up.res5[0].conv2_offset.out_channels == 54
    assert type(model.bottom_up.res3[0].conv2).__name__ == "ModulatedDeformConv"
    torch.nn.init.normal_(model.bottom_up.res3[1].conv2_offset.weight, std=0.01)
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out["p5"].shape == (1, 256, 2, 2) and torch.isfinite(out["p2"]).all()
    cfg.MODEL.RESNETS.DEPTH = 34
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    with pytest.raises(ValueError, match="DEFORM_ON_PER_STAGE"):
        build_backbone(cfg)


def test_backbone_is_abstract():
    with pytest.raises(TypeError):
        Backbone()


def _small_fpn(deform=False):
    cfg = _fpn_cfg()
    cfg.MODEL.RESNETS.NORM = "BN"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    if deform:
        cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False, False, True, True]
        cfg.MODEL.RESNETS.DEFORM_MODULATED = True
    torch.manual_seed(0)
    model = build_backbone(cfg).eval()
    if deform:
        for block in (model.bottom_up.res4[0], model.bottom_up.res5[1]):
            torch.nn.init.normal_(block.conv2_offset.weight, std=0.05)
    return model


def test_channels_last_and_non_contiguous_input_same_result():
    model = _small_fpn()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        nhwc = model(x.contiguous(memory_format=torch.channels_last))
        strided = model(torch.randn(1, 3, 64, 192)[..., ::2].copy_(x))
    for k in ref:
        torch.testing.assert_close(nhwc[k], ref[k], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(strided[k], ref[k], rtol=1e-4, atol=1e-4)


@pytest.mark.cuda
@pytest.mark.parametrize("deform", [False, True])
def test_fpn_cpu_cuda_parity(deform):
    # float64: in float32 the GPU's cuDNN convolutions use TF32 by default (seen on the
    # H100: differences up to 7e-2), which says nothing about our code.
    model = _small_fpn(deform).double()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        out = model.cuda()(x.cuda())
    for k in ref:
        torch.testing.assert_close(out[k].cpu(), ref[k], rtol=1e-7, atol=1e-7)


@pytest.mark.cuda
def test_fpn_backward_and_autocast_on_cuda():
    model = _small_fpn(deform=True).cuda().train()
    x = torch.randn(1, 3, 64, 64, device="cuda")
    sum(v.float().sum() for v in model(x).values()).backward()
    assert model.bottom_up.res4[0].conv2_offset.weight.grad is not None
    assert torch.isfinite(model.bottom_up.res4[0].conv2.weight.grad).all()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        out = model.eval()(x)
    assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_block_under_cpu_autocast(modulated):
    torch.manual_seed(0)
    block = DeformBottleneckBlock(64, 256, bottleneck_channels=64, norm="BN", deform_modulated=modulated).eval()
    torch.nn.init.normal_(block.conv2_offset.weight, std=0.05)
    x = torch.randn(1, 64, 12, 12)
    with torch.no_grad():
        ref = block(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = block(x)
    torch.testing.assert_close(out.float(), ref, rtol=0.1, atol=0.1)

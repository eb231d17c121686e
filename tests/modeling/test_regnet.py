import pytest
import torch
import torchvision

from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import Backbone, RegNet
from detectron2.modeling.backbone.regnet import (
    AnyNet,
    ResBasicBlock,
    ResBottleneckBlock,
    ResStem,
    SimpleStem,
    VanillaBlock,
    adjust_block_compatibility,
    generate_regnet_parameters,
)

ALL_STAGES = ["s1", "s2", "s3", "s4"]


def _regnet(**kwargs):
    args = dict(stem_class=SimpleStem, stem_width=32, block_class=ResBottleneckBlock, norm="BN",
                out_features=ALL_STAGES)
    args.update(kwargs)
    return RegNet(**args)


def _torchvision_count(model):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("fc."))


@pytest.mark.parametrize(
    "params,tv",
    [
        (dict(depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48), torchvision.models.regnet_x_3_2gf),
        (dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24, se_ratio=0.25), torchvision.models.regnet_y_3_2gf),
        (dict(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25), torchvision.models.regnet_y_400mf),
    ],
)
def test_parameter_counts_equal_torchvision(params, tv):
    # The same design-space rule: widths, depths, groups and SE sizes must all agree.
    assert sum(p.numel() for p in _regnet(**params).parameters()) == _torchvision_count(tv())


def test_regnet_parameters_rule():
    # RegNetY-4GF of the model zoo (detectron2 new baselines).
    ws, ds, num_stages, total_stages, ws_all, _ = generate_regnet_parameters(31.41, 96, 2.24, 22)
    assert ws == [96, 216, 480, 1080] and ds == [2, 6, 12, 2] and num_stages == 4
    assert len(ws_all) == 22 and total_stages == 4
    ws, bs, gs = adjust_block_compatibility([96, 216, 480, 1080], [1.0] * 4, [64] * 4)
    assert ws == [128, 192, 512, 1088] and gs == [64] * 4
    with pytest.raises(ValueError, match="w_0"):
        generate_regnet_parameters(10.0, 30, 2.0, 4)
    with pytest.raises(ValueError, match="positive"):
        adjust_block_compatibility([8], [0.0], [8])


def test_regnet_y_4gf_outputs_and_names():
    model = _regnet(depth=22, w_a=31.41, w_0=96, w_m=2.24, group_width=64, se_ratio=0.25).eval()
    assert isinstance(model, Backbone) and isinstance(model, AnyNet)
    shapes = model.output_shape()
    assert {k: (v.channels, v.stride) for k, v in shapes.items()} == {
        "s1": (128, 4), "s2": (192, 8), "s3": (512, 16), "s4": (1088, 32)
    }
    keys = set(model.state_dict())
    assert {
        "stem.conv.weight", "stem.bn.weight", "s1.b1.proj.weight", "s1.b1.bn.weight",
        "s1.b1.f.a.weight", "s1.b1.f.b.weight", "s1.b1.f.se.f_ex.0.weight", "s1.b1.f.se.f_ex.2.bias",
        "s1.b1.f.c_bn.running_var", "s4.b2.f.c.weight",
    } <= keys
    assert "s1.b2.proj.weight" not in keys
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert [tuple(out[k].shape) for k in ALL_STAGES] == [(1, 128, 16, 24), (1, 192, 8, 12), (1, 512, 4, 6), (1, 1088, 2, 3)]


def test_freeze_and_frozen_bn():
    model = _regnet(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, freeze_at=2, norm="FrozenBN")
    assert isinstance(model.stem.bn, FrozenBatchNorm2d)
    model = _regnet(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, freeze_at=2)
    assert all(not p.requires_grad for p in model.stem.parameters())
    assert all(not p.requires_grad for p in model.s1.parameters())
    assert all(p.requires_grad for p in model.s2.parameters())
    assert isinstance(model.s1.b1.f.a_bn, FrozenBatchNorm2d)
    assert isinstance(model.s2.b1.f.a_bn, torch.nn.BatchNorm2d)


def test_anynet_with_res_stem_and_other_blocks():
    for block in (VanillaBlock, ResBasicBlock):
        model = AnyNet(
            stem_class=ResStem, stem_width=16, block_class=block, depths=[1, 2], widths=[16, 32],
            group_widths=[1, 1], strides=[1, 2], bottleneck_ratios=[1.0, 1.0], se_ratio=0.0,
            activation_class=torch.nn.ReLU, out_features=["stem", "s2"],
        ).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, 32, 32))
        assert out["stem"].shape == (2, 16, 8, 8) and out["s2"].shape == (2, 32, 4, 4)
        assert model.output_shape()["s2"].stride == 8
    with pytest.raises(ValueError, match="out_features"):
        _regnet(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, out_features=["s5"])
    with pytest.raises(ValueError, match="differ in length"):
        AnyNet(stem_class=ResStem, stem_width=16, block_class=VanillaBlock, depths=[1], widths=[16, 32],
               group_widths=[1], strides=[1], bottleneck_ratios=[1.0], se_ratio=0.0,
               activation_class=torch.nn.ReLU)
    model = _regnet(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        model(torch.randn(3, 32, 32))

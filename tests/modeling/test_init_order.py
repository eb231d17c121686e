"""The global RNG is consumed in upstream's order while models are built.

Each test seeds torch, builds one of our modules, then seeds again and builds an
explicit reference from plain torch layers in the order upstream's source creates and
initialises them (each layer's default init runs at creation, the Caffe2-style fills
after). Weights must be equal, and so must the next random draw (what is created after
the model starts from the same RNG state).
"""
import math
from typing import Callable, Dict, List

import pytest
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.backbone import FPN, Backbone, BasicStem, BottleneckBlock, build_backbone
from detectron2.modeling.backbone.fpn import LastLevelP6P7
from detectron2.modeling.backbone.resnet import BasicBlock, ResNet
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.meta_arch.retinanet import RetinaNetHead
from detectron2.modeling.proposal_generator import StandardRPNHead, build_proposal_generator
from detectron2.modeling.roi_heads import (
    FastRCNNConvFCHead,
    FastRCNNOutputLayers,
    KRCNNConvDeconvUpsampleHead,
    MaskRCNNConvUpsampleHead,
    build_roi_heads,
)

SEED = 1234


def msra(m: nn.Module) -> None:  # Caffe2 MSRAFill
    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def xavier(m: nn.Module) -> None:  # Caffe2 XavierFill
    nn.init.kaiming_uniform_(m.weight, a=1)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def normal(m: nn.Module, std: float) -> None:
    nn.init.normal_(m.weight, std=std)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _built(fn: Callable[[], object]):
    torch.manual_seed(SEED)
    obj = fn()
    return obj, torch.rand(8)


def assert_same_draws(ours: Callable[[], nn.Module], reference: Callable[[], Dict[str, torch.Tensor]]) -> None:
    """``ours`` builds our module; ``reference`` builds the upstream-ordered layers and
    returns {our parameter name: tensor}. Every parameter must match exactly."""
    module, after_ours = _built(ours)
    ref, after_ref = _built(reference)
    params = dict(module.named_parameters())
    assert sorted(params) == sorted(ref), (sorted(params), sorted(ref))
    for name, value in ref.items():
        assert torch.equal(params[name].detach(), value.detach()), name
    assert torch.equal(after_ours, after_ref), "the RNG is left in another state"


def _params(prefix: str, m: nn.Module) -> Dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in m.named_parameters()}


def test_basic_stem():
    def ref():
        conv1 = nn.Conv2d(3, 16, 7, 2, 3, bias=False)
        msra(conv1)
        return _params("conv1.", conv1)

    assert_same_draws(lambda: BasicStem(3, 16, norm="FrozenBN"), ref)


@pytest.mark.parametrize("in_channels,stride", [(8, 1), (16, 2), (32, 1)])
def test_bottleneck_block(in_channels, stride):
    # shortcut, conv1, conv2, conv3 are created in that order; filled conv1..3 then shortcut.
    def ref():
        shortcut = nn.Conv2d(in_channels, 32, 1, stride, bias=False) if in_channels != 32 else None
        conv1 = nn.Conv2d(in_channels, 8, 1, stride, bias=False)
        conv2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        conv3 = nn.Conv2d(8, 32, 1, bias=False)
        for m in (conv1, conv2, conv3, shortcut):
            if m is not None:
                msra(m)
        out = {**_params("conv1.", conv1), **_params("conv2.", conv2), **_params("conv3.", conv3)}
        return {**out, **(_params("shortcut.", shortcut) if shortcut is not None else {})}

    assert_same_draws(
        lambda: BottleneckBlock(in_channels, 32, bottleneck_channels=8, stride=stride, norm="FrozenBN"), ref
    )


def test_basic_block():
    def ref():
        shortcut = nn.Conv2d(8, 16, 1, 2, bias=False)
        conv1 = nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        conv2 = nn.Conv2d(16, 16, 3, 1, 1, bias=False)
        for m in (conv1, conv2, shortcut):
            msra(m)
        return {**_params("conv1.", conv1), **_params("conv2.", conv2), **_params("shortcut.", shortcut)}

    assert_same_draws(lambda: BasicBlock(8, 16, stride=2, norm="FrozenBN"), ref)


def test_resnet_classifier_head():
    # Stem and stages are built by the caller first; ResNet adds the linear and draws normal_.
    def ours():
        stem = BasicStem(3, 8, norm="FrozenBN")
        stages = ResNet.make_stage(BasicBlock, 1, in_channels=8, out_channels=8, norm="FrozenBN")
        return ResNet(stem, [stages], num_classes=5)

    def ref():
        conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        msra(conv1)
        b1 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        b2 = nn.Conv2d(8, 8, 3, 1, 1, bias=False)
        msra(b1)
        msra(b2)
        linear = nn.Linear(8, 5)
        nn.init.normal_(linear.weight, std=0.01)
        return {**_params("stem.conv1.", conv1), **_params("res2.0.conv1.", b1), **_params("res2.0.conv2.", b2),
                **_params("linear.", linear)}

    assert_same_draws(ours, ref)


class _NoParamBottomUp(Backbone):
    def __init__(self, channels: List[int]):
        super().__init__()
        names = [f"res{i + 2}" for i in range(len(channels))]
        self._out_features = names
        self._out_feature_channels = dict(zip(names, channels))
        self._out_feature_strides = {n: 2 ** (i + 2) for i, n in enumerate(names)}

    def forward(self, x):
        return {}


@pytest.mark.parametrize("p6p7", [False, True])
def test_fpn(p6p7):
    channels = [4, 6, 8, 10]

    def ours():
        top = LastLevelP6P7(10, 5) if p6p7 else None
        return FPN(_NoParamBottomUp(channels), ["res2", "res3", "res4", "res5"], 5, top_block=top)

    def ref():
        out = {}
        if p6p7:  # the top block is an argument, built before FPN's own layers
            p6, p7 = nn.Conv2d(10, 5, 3, 2, 1), nn.Conv2d(5, 5, 3, 2, 1)
            xavier(p6)
            xavier(p7)
            out.update({**_params("top_block.p6.", p6), **_params("top_block.p7.", p7)})
        for i, c in enumerate(channels):
            lateral, output = nn.Conv2d(c, 5, 1), nn.Conv2d(5, 5, 3, 1, 1)
            xavier(lateral)
            xavier(output)
            out.update({**_params(f"fpn_lateral{i + 2}.", lateral), **_params(f"fpn_output{i + 2}.", output)})
        return out

    assert_same_draws(ours, ref)


def test_rpn_head():
    def ref():
        conv = nn.Conv2d(8, 8, 3, 1, 1)
        objectness = nn.Conv2d(8, 3, 1)
        deltas = nn.Conv2d(8, 12, 1)
        for m in (conv, objectness, deltas):
            normal(m, 0.01)
        return {**_params("conv.", conv), **_params("objectness_logits.", objectness),
                **_params("anchor_deltas.", deltas)}

    assert_same_draws(lambda: StandardRPNHead(in_channels=8, num_anchors=3), ref)


def test_box_head_and_predictor():
    def ours():
        return FastRCNNConvFCHead(ShapeSpec(channels=4, height=3, width=3), conv_dims=[5], fc_dims=[7, 6])

    def ref():
        conv = nn.Conv2d(4, 5, 3, 1, 1)
        fc1, fc2 = nn.Linear(45, 7), nn.Linear(7, 6)
        msra(conv)
        xavier(fc1)
        xavier(fc2)
        return {**_params("conv1.", conv), **_params("fc1.", fc1), **_params("fc2.", fc2)}

    assert_same_draws(ours, ref)

    def predictor():
        return FastRCNNOutputLayers(ShapeSpec(channels=6), box2box_transform=Box2BoxTransform((10, 10, 5, 5)),
                                    num_classes=3)

    def ref_predictor():
        cls_score, bbox_pred = nn.Linear(6, 4), nn.Linear(6, 12)
        normal(cls_score, 0.01)
        normal(bbox_pred, 0.001)
        return {**_params("cls_score.", cls_score), **_params("bbox_pred.", bbox_pred)}

    assert_same_draws(predictor, ref_predictor)


def test_mask_head():
    def ours():
        return MaskRCNNConvUpsampleHead(ShapeSpec(channels=4, height=6, width=6), num_classes=3, conv_dims=[5, 5, 6])

    def ref():
        fcn1, fcn2 = nn.Conv2d(4, 5, 3, 1, 1), nn.Conv2d(5, 5, 3, 1, 1)
        deconv = nn.ConvTranspose2d(5, 6, 2, 2, 0)
        predictor = nn.Conv2d(6, 3, 1)
        for m in (fcn1, fcn2, deconv):
            msra(m)
        normal(predictor, 0.001)
        return {**_params("mask_fcn1.", fcn1), **_params("mask_fcn2.", fcn2), **_params("deconv.", deconv),
                **_params("predictor.", predictor)}

    assert_same_draws(ours, ref)


def test_keypoint_head():
    def ours():
        return KRCNNConvDeconvUpsampleHead(ShapeSpec(channels=4, height=7, width=7), num_keypoints=5, conv_dims=[6, 6])

    def ref():
        c1, c2 = nn.Conv2d(4, 6, 3, 1, 1), nn.Conv2d(6, 6, 3, 1, 1)
        score = nn.ConvTranspose2d(6, 5, 4, stride=2, padding=1)
        for m in (c1, c2, score):  # named_parameters order: weights drawn, biases zeroed
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        return {**_params("conv_fcn1.", c1), **_params("conv_fcn2.", c2), **_params("score_lowres.", score)}

    assert_same_draws(ours, ref)


def test_retinanet_head():
    prior = 0.01

    def ours():
        return RetinaNetHead(input_shape=[ShapeSpec(channels=8)] * 2, num_classes=3, num_anchors=2, conv_dims=[8, 8],
                             prior_prob=prior)

    def ref():
        cls_convs, bbox_convs = [], []
        for _ in range(2):  # created alternately, cls then bbox, per depth
            cls_convs.append(nn.Conv2d(8, 8, 3, 1, 1))
            bbox_convs.append(nn.Conv2d(8, 8, 3, 1, 1))
        cls_score, bbox_pred = nn.Conv2d(8, 6, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)
        for m in cls_convs + bbox_convs + [cls_score, bbox_pred]:
            normal(m, 0.01)
        nn.init.constant_(cls_score.bias, -math.log((1 - prior) / prior))
        out = {}
        for i, (c, b) in enumerate(zip(cls_convs, bbox_convs)):
            out.update({**_params(f"cls_subnet.{2 * i}.", c), **_params(f"bbox_subnet.{2 * i}.", b)})
        return {**out, **_params("cls_score.", cls_score), **_params("bbox_pred.", bbox_pred)}

    assert_same_draws(ours, ref)


def _rcnn_cfg():
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 16
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64], [128], [256], [512]]
    cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 8
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 2
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.KEYPOINT_ON = True
    cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS = (8,)
    return cfg


def test_generalized_rcnn_builds_backbone_rpn_then_roi_heads():
    # Upstream's GeneralizedRCNN.from_config: backbone, proposal generator, ROI heads;
    # StandardROIHeads: box head, box predictor, mask head, keypoint head.
    cfg = _rcnn_cfg()

    def ref():
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        rpn = build_proposal_generator(cfg, shapes)
        roi_heads = build_roi_heads(cfg, shapes)
        return {**_params("backbone.", backbone), **_params("proposal_generator.", rpn),
                **_params("roi_heads.", roi_heads)}

    assert_same_draws(lambda: build_model(cfg), ref)

    from detectron2.modeling.roi_heads import build_box_head, build_keypoint_head, build_mask_head

    def ref_heads():
        res = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        box_head = build_box_head(cfg, ShapeSpec(channels=16, height=res, width=res))
        predictor = FastRCNNOutputLayers(cfg, box_head.output_shape)
        mres = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
        mask_head = build_mask_head(cfg, ShapeSpec(channels=16, height=mres, width=mres))
        kres = cfg.MODEL.ROI_KEYPOINT_HEAD.POOLER_RESOLUTION
        kp_head = build_keypoint_head(cfg, ShapeSpec(channels=16, height=kres, width=kres))
        return {**_params("box_head.", box_head), **_params("box_predictor.", predictor),
                **_params("mask_head.", mask_head), **_params("keypoint_head.", kp_head)}

    shapes = {f"p{i}": ShapeSpec(channels=16, stride=2**i) for i in range(2, 7)}
    assert_same_draws(lambda: build_roi_heads(cfg, shapes), ref_heads)


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_bottleneck_block(modulated):
    from detectron2.modeling.backbone.resnet import DeformBottleneckBlock

    def ours():
        return DeformBottleneckBlock(8, 16, bottleneck_channels=4, stride=2, norm="FrozenBN",
                                     deform_modulated=modulated)

    def ref():
        shortcut = nn.Conv2d(8, 16, 1, 2, bias=False)
        conv1 = nn.Conv2d(8, 4, 1, 1, bias=False)
        offset = nn.Conv2d(4, 27 if modulated else 18, 3, 2, 1)
        conv2 = torch.empty(4, 4, 3, 3)
        nn.init.kaiming_uniform_(conv2, nonlinearity="relu")  # DeformConv's own init
        conv3 = nn.Conv2d(4, 16, 1, bias=False)
        msra(conv1)
        nn.init.kaiming_normal_(conv2, mode="fan_out", nonlinearity="relu")
        msra(conv3)
        msra(shortcut)
        nn.init.zeros_(offset.weight)
        nn.init.zeros_(offset.bias)
        return {**_params("shortcut.", shortcut), **_params("conv1.", conv1), **_params("conv2_offset.", offset),
                "conv2.weight": conv2, **_params("conv3.", conv3)}

    assert_same_draws(ours, ref)


def test_vit_and_simple_feature_pyramid():
    from detectron2.modeling.backbone.vit import ViT, SimpleFeaturePyramid

    dim, heads, size, patch = 16, 2, 32, 8

    def ours():
        vit = ViT(img_size=size, patch_size=patch, in_chans=3, embed_dim=dim, depth=2, num_heads=heads,
                  mlp_ratio=2.0, use_rel_pos=True, rel_pos_zero_init=False, residual_block_indexes=[1],
                  pretrain_img_size=size)
        return SimpleFeaturePyramid(vit, "last_feat", out_channels=8, scale_factors=(2.0, 1.0, 0.5), norm="")

    def ref():
        out = {}
        proj = nn.Conv2d(3, dim, patch, patch)
        pos = torch.zeros(1, (size // patch) ** 2 + 1, dim)
        linears = []
        for i in range(2):
            qkv, aproj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            grid = size // patch
            rel_h, rel_w = torch.zeros(2 * grid - 1, dim // heads), torch.zeros(2 * grid - 1, dim // heads)
            nn.init.trunc_normal_(rel_h, std=0.02)
            nn.init.trunc_normal_(rel_w, std=0.02)
            fc1, fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
            p = f"net.blocks.{i}."
            out.update({**_params(p + "attn.qkv.", qkv), **_params(p + "attn.proj.", aproj),
                        p + "attn.rel_pos_h": rel_h, p + "attn.rel_pos_w": rel_w,
                        **_params(p + "mlp.fc1.", fc1), **_params(p + "mlp.fc2.", fc2)})
            for n in ("norm1", "norm2"):
                out[p + n + ".weight"], out[p + n + ".bias"] = torch.ones(dim), torch.zeros(dim)
            linears += [qkv, aproj, fc1, fc2]
            if i == 1:  # the conv residual block after block 1
                convs = [nn.Conv2d(dim, dim // 2, 1, bias=False), nn.Conv2d(dim // 2, dim // 2, 3, 1, 1, bias=False),
                         nn.Conv2d(dim // 2, dim, 1, bias=False)]
                for k, c in enumerate(convs, 1):
                    msra(c)
                    out[p + f"residual.conv{k}.weight"] = c.weight
                for k, c in ((1, dim // 2), (2, dim // 2), (3, dim)):
                    out[p + f"residual.norm{k}.weight"] = torch.ones(c) if k < 3 else torch.zeros(c)
                    out[p + f"residual.norm{k}.bias"] = torch.zeros(c)
        nn.init.trunc_normal_(pos, std=0.02)
        for lin in linears:  # ViT.apply(_init_weights) visits the Linears in module order
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        out.update({**_params("net.patch_embed.proj.", proj), "net.pos_embed": pos})
        # The pyramid: default inits only, in creation order per scale.
        up = nn.ConvTranspose2d(dim, dim // 2, 2, 2)
        levels = {"simfp_2": [up, nn.Conv2d(dim // 2, 8, 1), nn.Conv2d(8, 8, 3, 1, 1)]}
        levels["simfp_3"] = [nn.Conv2d(dim, 8, 1), nn.Conv2d(8, 8, 3, 1, 1)]
        levels["simfp_4"] = [nn.Conv2d(dim, 8, 1), nn.Conv2d(8, 8, 3, 1, 1)]
        for name, layers in levels.items():
            first = 1 if name == "simfp_2" else 0
            if first:
                out.update(_params(f"{name}.0.", up))
            for k, layer in enumerate(layers[first:]):
                out.update(_params(f"{name}.{k + first + (1 if name == 'simfp_4' else 0)}.", layer))
        return out

    assert_same_draws(ours, ref)


def test_fcos_head_adds_centerness_after_retinanet_layers():
    from detectron2.modeling.meta_arch.fcos import FCOSHead

    def ours():
        return FCOSHead(input_shape=[ShapeSpec(channels=8)] * 2, num_classes=3, conv_dims=[8])

    def ref():
        cls_conv, bbox_conv = nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, 1, 1)
        cls_score, bbox_pred = nn.Conv2d(8, 3, 3, 1, 1), nn.Conv2d(8, 4, 3, 1, 1)
        for m in (cls_conv, bbox_conv, cls_score, bbox_pred):
            normal(m, 0.01)
        nn.init.constant_(cls_score.bias, -math.log((1 - 0.01) / 0.01))
        ctrness = nn.Conv2d(8, 1, 3, 1, 1)
        normal(ctrness, 0.01)
        return {**_params("cls_subnet.0.", cls_conv), **_params("bbox_subnet.0.", bbox_conv),
                **_params("cls_score.", cls_score), **_params("bbox_pred.", bbox_pred), **_params("ctrness.", ctrness)}

    assert_same_draws(ours, ref)


def test_sem_seg_fpn_head():
    from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

    shapes = {"p3": ShapeSpec(channels=6, stride=8), "p2": ShapeSpec(channels=6, stride=4)}

    def ours():
        return SemSegFPNHead(shapes, num_classes=3, conv_dims=5, common_stride=4, norm="")

    def ref():
        out = {}
        # by stride: p2 (one conv), then p3 (one conv + upsample); each filled when created
        for name in ("p2", "p3"):
            conv = nn.Conv2d(6, 5, 3, 1, 1)
            msra(conv)
            out.update(_params(f"{name}.0.", conv))
        predictor = nn.Conv2d(5, 3, 1)
        msra(predictor)
        return {**out, **_params("predictor.", predictor)}

    assert_same_draws(ours, ref)

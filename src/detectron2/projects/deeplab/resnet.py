"""ResNet backbones of DeepLab: the three-conv "deeplab" stem, dilated res4/res5 and
the multi-grid dilations of res5."""
import torch
from torch.nn import functional as F

from detectron2.layers import CNNBlockBase, Conv2d, ShapeSpec, get_norm
from detectron2.layers._weight_init import c2_msra_fill
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.resnet import BasicStem, BottleneckBlock, DeformBottleneckBlock, ResNet

from .._errors import ProjectConfigError

__all__ = ["DeepLabStem", "build_resnet_deeplab_backbone"]


class DeepLabStem(CNNBlockBase):
    """Three 3x3 convs (the first with stride 2; widths out/2, out/2, out) with ReLU,
    then a 3x3 stride-2 max pool: overall stride 4, as the stem of Inception-style
    ResNets used by DeepLab."""

    def __init__(self, in_channels: int = 3, out_channels: int = 128, norm="BN"):
        super().__init__(in_channels, out_channels, 4)
        half = out_channels // 2
        self.conv1 = Conv2d(in_channels, half, kernel_size=3, stride=2, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv2 = Conv2d(half, half, kernel_size=3, stride=1, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv3 = Conv2d(half, out_channels, kernel_size=3, stride=1, padding=1, bias=False, norm=get_norm(norm, out_channels))
        for conv in (self.conv1, self.conv2, self.conv3):
            c2_msra_fill(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        x = F.relu_(self.conv2(x))
        x = F.relu_(self.conv3(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


_BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


@BACKBONE_REGISTRY.register()
def build_resnet_deeplab_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """A ResNet-50/101/152 for DeepLab from ``cfg.MODEL.RESNETS`` (see add_deeplab_config)."""
    r = cfg.MODEL.RESNETS
    norm = r.NORM
    if r.STEM_TYPE == "basic":
        stem = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)
    elif r.STEM_TYPE == "deeplab":
        stem = DeepLabStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)
    else:
        raise ValueError(f"MODEL.RESNETS.STEM_TYPE must be 'basic' or 'deeplab', got {r.STEM_TYPE!r}")
    if r.DEPTH not in _BLOCKS:
        raise ProjectConfigError(f"build_resnet_deeplab_backbone: MODEL.RESNETS.DEPTH must be 50, 101 or 152, got {r.DEPTH}")
    if r.RES4_DILATION not in (1, 2):
        raise ProjectConfigError(f"MODEL.RESNETS.RES4_DILATION must be 1 or 2, got {r.RES4_DILATION}")
    if r.RES5_DILATION not in (1, 2, 4):
        raise ProjectConfigError(f"MODEL.RESNETS.RES5_DILATION must be 1, 2 or 4, got {r.RES5_DILATION}")
    if r.RES4_DILATION == 2 and r.RES5_DILATION != 4:
        raise ProjectConfigError(f"a dilated res4 needs MODEL.RESNETS.RES5_DILATION 4, got {r.RES5_DILATION}")
    stage_of = {"res2": 2, "res3": 3, "res4": 4, "res5": 5}
    unknown = [f for f in r.OUT_FEATURES if f not in stage_of]
    if unknown:
        raise ProjectConfigError(f"MODEL.RESNETS.OUT_FEATURES: {unknown} are not among {sorted(stage_of)}")

    blocks_per_stage = _BLOCKS[r.DEPTH]
    bottleneck_channels = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    in_channels, out_channels = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    stages = []
    for idx, stage_idx in enumerate(range(2, max(stage_of[f] for f in r.OUT_FEATURES) + 1)):
        dilation = {4: r.RES4_DILATION, 5: r.RES5_DILATION}.get(stage_idx, 1)
        # a dilated stage keeps the resolution instead of striding
        first_stride = 1 if idx == 0 or dilation > 1 else 2
        n = blocks_per_stage[idx]
        kwargs = {
            "num_blocks": n,
            "stride_per_block": [first_stride] + [1] * (n - 1),
            "in_channels": in_channels,
            "out_channels": out_channels,
            "norm": norm,
            "bottleneck_channels": bottleneck_channels,
            "stride_in_1x1": r.STRIDE_IN_1X1,
            "num_groups": r.NUM_GROUPS,
        }
        if r.DEFORM_ON_PER_STAGE[idx]:
            kwargs["block_class"] = DeformBottleneckBlock
            kwargs["deform_modulated"] = r.DEFORM_MODULATED
            kwargs["deform_num_groups"] = r.DEFORM_NUM_GROUPS
        else:
            kwargs["block_class"] = BottleneckBlock
        if stage_idx == 5:
            grid = list(r.RES5_MULTI_GRID)
            if len(grid) != n:
                raise ProjectConfigError(f"MODEL.RESNETS.RES5_MULTI_GRID needs {n} values, got {grid}")
            kwargs["dilation_per_block"] = [dilation * g for g in grid]
        else:
            kwargs["dilation"] = dilation
        stages.append(ResNet.make_stage(**kwargs))
        in_channels = out_channels
        out_channels *= 2
        bottleneck_channels *= 2
    return ResNet(stem, stages, out_features=r.OUT_FEATURES).freeze(cfg.MODEL.BACKBONE.FREEZE_AT)

"""ResNet / ResNeXt backbones with optional deformable stages (upstream's naming, so
that its checkpoints load: ``stem.conv1``, ``res2.0.conv1.norm``, ``res2.0.shortcut``)."""
import copy
from typing import Dict, List, Optional, Sequence, Type

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import (
    CNNBlockBase,
    Conv2d,
    DeformConv,
    ModulatedDeformConv,
    ShapeSpec,
    get_norm,
)
from detectron2.layers import _weight_init as weight_init

from .backbone import Backbone
from .build import BACKBONE_REGISTRY

__all__ = [
    "ResNetBlockBase",
    "BasicBlock",
    "BottleneckBlock",
    "DeformBottleneckBlock",
    "BasicStem",
    "ResNet",
    "make_stage",
    "build_resnet_backbone",
]

# Blocks per stage (res2..res5) for each depth.
_BLOCKS_PER_STAGE = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
}


def _shortcut(in_channels: int, out_channels: int, stride: int, norm) -> Optional[Conv2d]:
    """1x1 projection when the block changes the channel count, else identity (None)."""
    if in_channels == out_channels:
        return None
    return Conv2d(
        in_channels,
        out_channels,
        kernel_size=1,
        stride=stride,
        bias=False,
        norm=get_norm(norm, out_channels),
    )


def _init_convs(*convs: Optional[nn.Module]) -> None:
    for conv in convs:
        if conv is not None:
            weight_init.c2_msra_fill(conv)


class BasicBlock(CNNBlockBase):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, norm="BN"):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        self.conv1 = Conv2d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False,
            norm=get_norm(norm, out_channels),
        )
        self.conv2 = Conv2d(
            out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
            norm=get_norm(norm, out_channels),
        )
        _init_convs(self.conv1, self.conv2, self.shortcut)

    def forward(self, x):
        out = F.relu_(self.conv1(x))
        out = self.conv2(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class BottleneckBlock(CNNBlockBase):
    """1x1 reduce, 3x3 (grouped, dilated), 1x1 expand, with a residual connection.

    ``stride_in_1x1`` puts the stride on the first 1x1 conv (MSRA / Caffe2 models)
    instead of the 3x3 one (torchvision / FB models).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm="BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv2 = self._make_conv2(bottleneck_channels, stride_3x3, num_groups, dilation, norm)
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, kernel_size=1, bias=False, norm=get_norm(norm, out_channels)
        )
        # Zero-init of the last norm's gamma is left off, as upstream: it did not help
        # with the default schedules.
        _init_convs(self.conv1, self.conv2, self.conv3, self.shortcut)

    @staticmethod
    def _make_conv2(channels: int, stride: int, num_groups: int, dilation: int, norm) -> Conv2d:
        return Conv2d(
            channels, channels, kernel_size=3, stride=stride, padding=dilation, bias=False,
            groups=num_groups, dilation=dilation, norm=get_norm(norm, channels),
        )

    def forward(self, x):
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class DeformBottleneckBlock(CNNBlockBase):
    """A bottleneck block whose 3x3 conv is deformable (v1) or modulated (v2); a plain
    3x3 conv ``conv2_offset`` predicts the offsets (and mask) from the block's input."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm="BN",
        stride_in_1x1: bool = False,
        dilation: int = 1,
        deform_modulated: bool = False,
        deform_num_groups: int = 1,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.deform_modulated = deform_modulated
        self.shortcut = _shortcut(in_channels, out_channels, stride, norm)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(
            in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
            norm=get_norm(norm, bottleneck_channels),
        )
        # 2 offsets (dy, dx) per kernel tap, plus one mask value per tap when modulated.
        per_group = 27 if deform_modulated else 18
        self.conv2_offset = Conv2d(
            bottleneck_channels,
            per_group * deform_num_groups,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            dilation=dilation,
        )
        op = ModulatedDeformConv if deform_modulated else DeformConv
        self.conv2 = op(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size=3,
            stride=stride_3x3,
            padding=dilation,
            bias=False,
            groups=num_groups,
            dilation=dilation,
            deformable_groups=deform_num_groups,
            norm=get_norm(norm, bottleneck_channels),
        )
        self.conv3 = Conv2d(
            bottleneck_channels, out_channels, kernel_size=1, bias=False, norm=get_norm(norm, out_channels)
        )
        _init_convs(self.conv1, self.conv2, self.conv3, self.shortcut)
        # Start as a regular conv: zero offsets (and a constant 0.5 mask when modulated).
        nn.init.constant_(self.conv2_offset.weight, 0)
        nn.init.constant_(self.conv2_offset.bias, 0)

    def forward(self, x):
        out = F.relu_(self.conv1(x))
        if self.deform_modulated:
            offset_x, offset_y, mask = torch.chunk(self.conv2_offset(out), 3, dim=1)
            offset = torch.cat((offset_x, offset_y), dim=1)
            out = self.conv2(out, offset, mask.sigmoid())
        else:
            out = self.conv2(out, self.conv2_offset(out))
        out = F.relu_(out)
        out = self.conv3(out)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out + shortcut)


class BasicStem(CNNBlockBase):
    """7x7 stride-2 conv, ReLU and 3x3 stride-2 max pool: overall stride 4."""

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm="BN"):
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(
            in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
            norm=get_norm(norm, out_channels),
        )
        weight_init.c2_msra_fill(self.conv1)

    def forward(self, x):
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


_STAGE_INDEX = {"res2": 1, "res3": 2, "res4": 3, "res5": 4}


class ResNet(Backbone):
    """A stem followed by stages ``res2``, ``res3``, ... and an optional classifier."""

    def __init__(
        self,
        stem: nn.Module,
        stages: List[List[CNNBlockBase]],
        num_classes: Optional[int] = None,
        out_features: Optional[Sequence[str]] = None,
        freeze_at: int = 0,
    ):
        """
        Args:
            stem: the first module, with an integer ``stride`` and ``out_channels``.
            stages: each a non-empty list of CNNBlockBase; stage i is named "res{i+2}".
            num_classes: if given, adds global average pooling and a "linear" classifier.
            out_features: names among "stem", "res2", ..., "linear" to return; stages
                past the last requested one are not built. Default: the last layer.
            freeze_at: see :meth:`freeze`.
        """
        super().__init__()
        self.stem = stem
        self.num_classes = num_classes

        stride = stem.stride
        self._out_feature_strides = {"stem": stride}
        self._out_feature_channels = {"stem": stem.out_channels}

        if out_features is not None:
            needed = max(_STAGE_INDEX.get(f, 0) for f in out_features)
            if num_classes is None or "linear" not in out_features:
                stages = stages[:needed]

        self.stage_names, self.stages = [], []
        name, channels = "stem", stem.out_channels
        for i, blocks in enumerate(stages):
            if len(blocks) == 0:
                raise ValueError(f"ResNet: stage {i} of `stages` is empty")
            for block in blocks:
                if not isinstance(block, CNNBlockBase):
                    raise TypeError(f"ResNet: stage blocks must be CNNBlockBase, got {type(block).__name__}")
            name = "res" + str(i + 2)
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            self.stage_names.append(name)
            self.stages.append(stage)
            stride = int(stride * np.prod([b.stride for b in blocks]))
            channels = blocks[-1].out_channels
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = channels
        self.stage_names = tuple(self.stage_names)  # a tuple keeps torchscript happy

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.linear = nn.Linear(channels, num_classes)
            # As in "Accurate, Large Minibatch SGD": a small init for the classifier.
            nn.init.normal_(self.linear.weight, std=0.01)
            name = "linear"

        if out_features is None:
            out_features = [name]
        self._out_features = list(out_features)
        children = [x[0] for x in self.named_children()]
        for f in self._out_features:
            if f not in children:
                raise ValueError(f"ResNet: out_features has {f!r}, available: {', '.join(children)}")
        self.freeze(freeze_at)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        if x.dim() != 4:
            raise ValueError(f"ResNet takes an (N, C, H, W) input, got shape {x.shape}")
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in self._out_features:
                outputs[name] = x
        if self.num_classes is not None:
            x = self.avgpool(x)
            x = torch.flatten(x, 1)
            x = self.linear(x)
            if "linear" in self._out_features:
                outputs["linear"] = x
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }

    def __prepare_scriptable__(self) -> "ResNet":
        # TorchScript iterates only ModuleLists: script a copy whose stages are one.
        # Its state_dict names the stages "stages.i" instead of "res{i+2}".
        ret = copy.deepcopy(self)
        ret.stages = nn.ModuleList(ret.stages)
        for name in self.stage_names:
            delattr(ret, name)
        return ret

    def freeze(self, freeze_at: int = 0) -> "ResNet":
        """Freeze the stem (freeze_at >= 1) and the first ``freeze_at - 1`` stages:
        their parameters stop training and their BatchNorms become frozen. 0 freezes
        nothing; 2 (the default of configs) freezes stem and res2."""
        if freeze_at >= 1:
            self.stem.freeze()
        for idx, stage in enumerate(self.stages, start=2):
            if freeze_at >= idx:
                for block in stage.children():
                    block.freeze()
        return self

    @staticmethod
    def make_stage(
        block_class: Type[CNNBlockBase], num_blocks: int, *, in_channels: int, out_channels: int, **kwargs
    ) -> List[CNNBlockBase]:
        """Create ``num_blocks`` blocks of one class. A keyword ``foo_per_block`` is a
        list of ``num_blocks`` values: block i gets ``foo=value[i]``; other keywords go
        to every block. The first block maps in_channels -> out_channels, the others
        out_channels -> out_channels."""
        blocks = []
        for i in range(num_blocks):
            block_kwargs = {}
            for key, value in kwargs.items():
                if key.endswith("_per_block"):
                    if len(value) != num_blocks:
                        raise ValueError(
                            f"make_stage: {key} has {len(value)} values for {num_blocks} blocks"
                        )
                    base = key[: -len("_per_block")]
                    if base in kwargs:
                        raise ValueError(f"make_stage: both {base} and {key} were given")
                    block_kwargs[base] = value[i]
                else:
                    block_kwargs[key] = value
            blocks.append(block_class(in_channels=in_channels, out_channels=out_channels, **block_kwargs))
            in_channels = out_channels
        return blocks

    @staticmethod
    def make_default_stages(depth: int, block_class: Optional[Type[CNNBlockBase]] = None, **kwargs):
        """The four stages of a standard ResNet of ``depth`` (18/34/50/101/152).
        ``block_class`` overrides the block type; other kwargs go to make_stage."""
        if depth not in _BLOCKS_PER_STAGE:
            raise ValueError(f"ResNet depth must be one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}")
        num_blocks = _BLOCKS_PER_STAGE[depth]
        if block_class is None:
            block_class = BasicBlock if depth < 50 else BottleneckBlock
        if depth < 50:
            in_channels, out_channels = [64, 64, 128, 256], [64, 128, 256, 512]
        else:
            in_channels, out_channels = [64, 256, 512, 1024], [256, 512, 1024, 2048]
        stages = []
        for n, s, i, o in zip(num_blocks, [1, 2, 2, 2], in_channels, out_channels):
            if depth >= 50:
                kwargs["bottleneck_channels"] = o // 4
            stages.append(
                ResNet.make_stage(
                    block_class=block_class,
                    num_blocks=n,
                    stride_per_block=[s] + [1] * (n - 1),
                    in_channels=i,
                    out_channels=o,
                    **kwargs,
                )
            )
        return stages


ResNetBlockBase = CNNBlockBase
"""Kept for code written against older detectron2."""

make_stage = ResNet.make_stage
"""Kept for code written against older detectron2; see ResNet.make_stage."""


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """A ResNet from ``cfg.MODEL.RESNETS`` and ``cfg.MODEL.BACKBONE.FREEZE_AT``."""
    r = cfg.MODEL.RESNETS
    norm = r.NORM
    stem = BasicStem(in_channels=input_shape.channels, out_channels=r.STEM_OUT_CHANNELS, norm=norm)

    depth = r.DEPTH
    if depth not in _BLOCKS_PER_STAGE:
        raise ValueError(f"MODEL.RESNETS.DEPTH must be one of {sorted(_BLOCKS_PER_STAGE)}, got {depth}")
    out_features = r.OUT_FEATURES
    num_groups = r.NUM_GROUPS
    bottleneck_channels = num_groups * r.WIDTH_PER_GROUP
    in_channels = r.STEM_OUT_CHANNELS
    out_channels = r.RES2_OUT_CHANNELS
    res5_dilation = r.RES5_DILATION
    deform_on_per_stage = r.DEFORM_ON_PER_STAGE
    if res5_dilation not in (1, 2):
        raise ValueError(f"MODEL.RESNETS.RES5_DILATION must be 1 or 2, got {res5_dilation}")
    if depth in (18, 34):
        if out_channels != 64:
            raise ValueError("MODEL.RESNETS.RES2_OUT_CHANNELS must be 64 for ResNet-18/34")
        if any(deform_on_per_stage):
            raise ValueError("MODEL.RESNETS.DEFORM_ON_PER_STAGE is unsupported for ResNet-18/34")
        if res5_dilation != 1:
            raise ValueError("MODEL.RESNETS.RES5_DILATION must be 1 for ResNet-18/34")
        if num_groups != 1:
            raise ValueError("MODEL.RESNETS.NUM_GROUPS must be 1 for ResNet-18/34")

    stage_ids = [{"res2": 2, "res3": 3, "res4": 4, "res5": 5}[f] for f in out_features if f != "stem"]
    last_stage = max(stage_ids) if stage_ids else 1
    stages = []
    for idx, stage_id in enumerate(range(2, last_stage + 1)):
        # A dilated res5 keeps stride 16 instead of downsampling.
        dilation = res5_dilation if stage_id == 5 else 1
        first_stride = 1 if idx == 0 or (stage_id == 5 and dilation == 2) else 2
        n = _BLOCKS_PER_STAGE[depth][idx]
        kwargs = {
            "num_blocks": n,
            "stride_per_block": [first_stride] + [1] * (n - 1),
            "in_channels": in_channels,
            "out_channels": out_channels,
            "norm": norm,
        }
        if depth in (18, 34):
            kwargs["block_class"] = BasicBlock
        else:
            kwargs["bottleneck_channels"] = bottleneck_channels
            kwargs["stride_in_1x1"] = r.STRIDE_IN_1X1
            kwargs["dilation"] = dilation
            kwargs["num_groups"] = num_groups
            if deform_on_per_stage[idx]:
                kwargs["block_class"] = DeformBottleneckBlock
                kwargs["deform_modulated"] = r.DEFORM_MODULATED
                kwargs["deform_num_groups"] = r.DEFORM_NUM_GROUPS
            else:
                kwargs["block_class"] = BottleneckBlock
        stages.append(ResNet.make_stage(**kwargs))
        in_channels = out_channels
        out_channels *= 2
        bottleneck_channels *= 2
    return ResNet(stem, stages, out_features=out_features, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)

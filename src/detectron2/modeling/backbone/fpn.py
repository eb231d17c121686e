"""Feature Pyramid Network (Lin et al., 2017) on top of a bottom-up backbone."""
import copy
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.layers import _weight_init as weight_init

from .backbone import Backbone
from .build import BACKBONE_REGISTRY
from .resnet import build_resnet_backbone

__all__ = [
    "build_resnet_fpn_backbone",
    "build_retinanet_resnet_fpn_backbone",
    "FPN",
    "LastLevelMaxPool",
    "LastLevelP6P7",
]


class FPN(Backbone):
    """Lateral 1x1 convs, a nearest-upsampling top-down path and 3x3 output convs over
    the bottom-up features ``in_features``; outputs are named "p{log2(stride)}".

    Parameter names follow upstream: ``fpn_lateral{stage}``, ``fpn_output{stage}``,
    ``bottom_up.*`` and ``top_block.*``.
    """

    _fuse_type: torch.jit.Final[str]

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int,
        norm: str = "",
        top_block: Optional[nn.Module] = None,
        fuse_type: str = "sum",
        square_pad: int = 0,
    ):
        """
        Args:
            bottom_up: a Backbone whose output_shape() describes ``in_features``.
            in_features: bottom-up feature names, from fine to coarse, with strides
                that double at each step (e.g. res2..res5).
            out_channels: channels of every output map.
            norm: norm of the FPN convs ("" for none, in which case they get a bias).
            top_block: optional module that makes extra coarser levels from one
                feature; it has ``num_levels`` and ``in_feature`` attributes.
            fuse_type: "sum" or "avg" of the lateral and top-down features.
            square_pad: if > 0, inputs are padded to this square size.
        """
        super().__init__()
        if not isinstance(bottom_up, Backbone):
            raise TypeError(f"FPN: bottom_up must be a Backbone, got {type(bottom_up).__name__}")
        if not in_features:
            raise ValueError("FPN: in_features must not be empty")
        if fuse_type not in ("avg", "sum"):
            raise ValueError(f"FPN: fuse_type must be 'sum' or 'avg', got {fuse_type!r}")

        input_shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in input_shapes]
        if missing:
            raise ValueError(f"FPN: in_features {missing} are not outputs of bottom_up ({list(input_shapes)})")
        strides = [input_shapes[f].stride for f in in_features]
        _assert_strides_are_log2_contiguous(strides)

        use_bias = norm == ""
        lateral_convs, output_convs = [], []
        for in_channels, stride in zip((input_shapes[f].channels for f in in_features), strides):
            lateral = Conv2d(
                in_channels, out_channels, kernel_size=1, bias=use_bias, norm=get_norm(norm, out_channels)
            )
            output = Conv2d(
                out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=use_bias,
                norm=get_norm(norm, out_channels),
            )
            weight_init.c2_xavier_fill(lateral)
            weight_init.c2_xavier_fill(output)
            stage = int(math.log2(stride))
            self.add_module(f"fpn_lateral{stage}", lateral)
            self.add_module(f"fpn_output{stage}", output)
            lateral_convs.append(lateral)
            output_convs.append(output)
        # Plain lists (not ModuleLists) so that state_dict keys stay fpn_lateral{stage};
        # ordered coarse to fine, the order of the top-down pass.
        self.lateral_convs = lateral_convs[::-1]
        self.output_convs = output_convs[::-1]
        self.top_block = top_block
        self.in_features = tuple(in_features)
        self.bottom_up = bottom_up

        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        if top_block is not None:
            last = int(math.log2(strides[-1]))
            for s in range(last, last + top_block.num_levels):
                self._out_feature_strides[f"p{s + 1}"] = 2 ** (s + 1)
        self._out_features = list(self._out_feature_strides.keys())
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._size_divisibility = strides[-1]
        self._square_pad = square_pad
        self._fuse_type = fuse_type

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> Dict[str, int]:
        return {"square_size": self._square_pad}

    def __prepare_scriptable__(self) -> "FPN":
        # TorchScript indexes and iterates only ModuleLists: script a copy that holds the
        # convs in ModuleLists (its state_dict names them lateral_convs.i / output_convs.i).
        ret = copy.deepcopy(self)
        ret.lateral_convs = nn.ModuleList(ret.lateral_convs)
        ret.output_convs = nn.ModuleList(ret.output_convs)
        for name, _ in self.named_children():
            if name.startswith("fpn_"):
                delattr(ret, name)
        return ret

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Returns dict[str, Tensor]: "p2".."p{n}" (fine to coarse) -> feature map."""
        bottom_up_features = self.bottom_up(x)
        results: List[torch.Tensor] = []
        prev = self.lateral_convs[0](bottom_up_features[self.in_features[-1]])
        results.append(self.output_convs[0](prev))
        for idx, (lateral_conv, output_conv) in enumerate(zip(self.lateral_convs, self.output_convs)):
            # No `continue`: TorchScript unrolls loops over ModuleLists and forbids it.
            if idx > 0:
                feature = bottom_up_features[self.in_features[-idx - 1]]
                top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
                prev = lateral_conv(feature) + top_down
                if self._fuse_type == "avg":
                    prev = prev / 2
                results.insert(0, output_conv(prev))

        if self.top_block is not None:
            name = self.top_block.in_feature
            if name in bottom_up_features:
                top_input = bottom_up_features[name]
            else:
                top_input = results[self._out_features.index(name)]
            results.extend(self.top_block(top_input))
        assert len(self._out_features) == len(results)
        return {f: r for f, r in zip(self._out_features, results)}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }


def _assert_strides_are_log2_contiguous(strides: Sequence[int]) -> None:
    for i in range(1, len(strides)):
        if strides[i] != 2 * strides[i - 1]:
            raise ValueError(f"FPN: strides {list(strides)} of in_features must double at each level")


class LastLevelMaxPool(nn.Module):
    """P6 as a stride-2 subsampling of P5 (the extra RPN level of Mask R-CNN)."""

    def __init__(self):
        super().__init__()
        self.num_levels = 1
        self.in_feature = "p5"

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


class LastLevelP6P7(nn.Module):
    """P6 and P7 from C5 (or P5) by two stride-2 3x3 convs, as in RetinaNet."""

    def __init__(self, in_channels: int, out_channels: int, in_feature: str = "res5"):
        super().__init__()
        self.num_levels = 2
        self.in_feature = in_feature
        self.p6 = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.p7 = nn.Conv2d(out_channels, out_channels, 3, 2, 1)
        for module in (self.p6, self.p7):
            weight_init.c2_xavier_fill(module)

    def forward(self, c5: torch.Tensor) -> List[torch.Tensor]:
        p6 = self.p6(c5)
        p7 = self.p7(F.relu(p6))
        return [p6, p7]


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """ResNet + FPN with a max-pooled P6 (Mask R-CNN / Faster R-CNN FPN configs)."""
    return FPN(
        bottom_up=build_resnet_backbone(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_retinanet_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """ResNet + FPN with P6/P7 computed from C5 (RetinaNet configs)."""
    bottom_up = build_resnet_backbone(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(bottom_up.output_shape()["res5"].channels, out_channels),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )

"""Box heads: turn pooled RoI features into one feature vector per RoI."""
from typing import List, Tuple, Union

import numpy as np
import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.layers import _weight_init as weight_init
from detectron2.utils.registry import Registry

__all__ = ["FastRCNNConvFCHead", "build_box_head", "ROI_BOX_HEAD_REGISTRY"]

ROI_BOX_HEAD_REGISTRY = Registry("ROI_BOX_HEAD")
ROI_BOX_HEAD_REGISTRY.__doc__ = """
Registry for box heads: they take pooled RoI features and return per-RoI features.
A registered class is called as ``cls(cfg, input_shape)``.
"""


@ROI_BOX_HEAD_REGISTRY.register()
class FastRCNNConvFCHead(nn.Sequential):
    """Zero or more 3x3 convs followed by zero or more FC layers, each with a ReLU
    (modules ``conv1..``, ``flatten``, ``fc1..``, as upstream)."""

    @configurable
    def __init__(
        self, input_shape: ShapeSpec, *, conv_dims: List[int], fc_dims: List[int], conv_norm: str = ""
    ):
        """
        Args:
            input_shape: shape of the pooled features (channels, height, width).
            conv_dims: output channels of each conv layer.
            fc_dims: output size of each FC layer.
            conv_norm: normalization after each conv (see :func:`layers.get_norm`).
        """
        super().__init__()
        if len(conv_dims) + len(fc_dims) == 0:
            raise ValueError("FastRCNNConvFCHead: conv_dims and fc_dims are both empty")
        size: Union[int, Tuple[int, int, int]] = (input_shape.channels, input_shape.height, input_shape.width)

        self.conv_norm_relus = []
        for k, conv_dim in enumerate(conv_dims):
            conv = Conv2d(
                size[0], conv_dim, kernel_size=3, padding=1, bias=not conv_norm,
                norm=get_norm(conv_norm, conv_dim), activation=nn.ReLU(),
            )
            self.add_module(f"conv{k + 1}", conv)
            self.conv_norm_relus.append(conv)
            size = (conv_dim, size[1], size[2])

        self.fcs = []
        for k, fc_dim in enumerate(fc_dims):
            if k == 0:
                self.add_module("flatten", nn.Flatten())
            fc = nn.Linear(int(np.prod(size)), fc_dim)
            self.add_module(f"fc{k + 1}", fc)
            self.add_module(f"fc_relu{k + 1}", nn.ReLU())
            self.fcs.append(fc)
            size = fc_dim
        self._output_size = size

        for layer in self.conv_norm_relus:
            weight_init.c2_msra_fill(layer)
        for layer in self.fcs:
            weight_init.c2_xavier_fill(layer)

    @classmethod
    def from_config(cls, cfg, input_shape):
        head = cfg.MODEL.ROI_BOX_HEAD
        return {
            "input_shape": input_shape,
            "conv_dims": [head.CONV_DIM] * head.NUM_CONV,
            "fc_dims": [head.FC_DIM] * head.NUM_FC,
            "conv_norm": head.NORM,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x

    @property
    @torch.jit.unused
    def output_shape(self) -> ShapeSpec:
        """Shape of one RoI's output: channels only after an FC layer, else C x H x W."""
        size = self._output_size
        if isinstance(size, int):
            return ShapeSpec(channels=size)
        return ShapeSpec(channels=size[0], height=size[1], width=size[2])


def build_box_head(cfg, input_shape: ShapeSpec) -> nn.Module:
    """Build the box head named by ``cfg.MODEL.ROI_BOX_HEAD.NAME``."""
    return ROI_BOX_HEAD_REGISTRY.get(cfg.MODEL.ROI_BOX_HEAD.NAME)(cfg, input_shape)

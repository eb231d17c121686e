"""The interface every backbone implements."""
from abc import ABCMeta, abstractmethod
from typing import Dict

from torch import nn

from detectron2.layers import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """A network that maps an NCHW image batch to a dict of named feature maps.

    Subclasses set ``_out_features`` (names, in order), ``_out_feature_channels`` and
    ``_out_feature_strides`` (dicts keyed by those names), or override output_shape().
    """

    def __init__(self):
        super().__init__()

    @abstractmethod
    def forward(self):
        """Returns dict[str, Tensor]: feature name -> feature map."""

    @property
    def size_divisibility(self) -> int:
        """Input H and W must be multiples of this (0: no constraint); e.g. FPN needs
        its coarsest stride so that top-down upsampling lines up."""
        return 0

    @property
    def padding_constraints(self) -> Dict[str, int]:
        """Extra padding requirements, e.g. {"square_size": 1024} for ViT backbones.
        Keys override size_divisibility where both are given."""
        return {}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
            for name in self._out_features
        }

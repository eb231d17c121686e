from copy import deepcopy
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from . import _weight_init as weight_init
from .batch_norm import get_norm
from .blocks import DepthwiseSeparableConv2d
from .wrappers import Conv2d

__all__ = ["ASPP"]


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabV3): a 1x1 conv, three dilated 3x3 convs
    and an image-pooling branch, concatenated and projected back to out_channels."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dilations: List[int],
        *,
        norm: Union[str, Callable[[int], nn.Module], None],
        activation: Callable,
        pool_kernel_size: Optional[Tuple[int, int]] = None,
        dropout: float = 0.0,
        use_depthwise_separable_conv: bool = False,
    ):
        """
        Args:
            in_channels, out_channels: channels of the input and of every branch/output.
            dilations: the dilations of the three 3x3 branches.
            norm: normalization of every conv branch (see get_norm); "" for none.
            activation: applied after every branch (each gets its own copy).
            pool_kernel_size: None pools the whole image (global average); (h, w)
                averages with that window and stride 1, which makes the module work on
                fixed-size inputs when exported (inputs must be divisible by it).
            dropout: dropout after the projection (training only).
            use_depthwise_separable_conv: build the 3x3 branches as
                DepthwiseSeparableConv2d.
        """
        super().__init__()
        assert len(dilations) == 3, f"ASPP expects 3 dilations, got {len(dilations)}"
        self.pool_kernel_size = pool_kernel_size
        self.dropout = dropout
        use_bias = norm == ""
        self.convs = nn.ModuleList()
        self.convs.append(
            Conv2d(
                in_channels,
                out_channels,
                kernel_size=1,
                bias=use_bias,
                norm=get_norm(norm, out_channels),
                activation=deepcopy(activation),
            )
        )
        weight_init.c2_xavier_fill(self.convs[-1])
        for dilation in dilations:
            if use_depthwise_separable_conv:
                self.convs.append(
                    DepthwiseSeparableConv2d(
                        in_channels,
                        out_channels,
                        kernel_size=3,
                        padding=dilation,
                        dilation=dilation,
                        norm1=norm,
                        activation1=deepcopy(activation),
                        norm2=norm,
                        activation2=deepcopy(activation),
                    )
                )
            else:
                self.convs.append(
                    Conv2d(
                        in_channels,
                        out_channels,
                        kernel_size=3,
                        padding=dilation,
                        dilation=dilation,
                        bias=use_bias,
                        norm=get_norm(norm, out_channels),
                        activation=deepcopy(activation),
                    )
                )
                weight_init.c2_xavier_fill(self.convs[-1])
        # The pooling branch has no norm: BatchNorm on a 1x1 map of batch 1 is undefined.
        pool = nn.AdaptiveAvgPool2d(1) if pool_kernel_size is None else nn.AvgPool2d(pool_kernel_size, stride=1)
        image_pooling = nn.Sequential(
            pool, Conv2d(in_channels, out_channels, 1, bias=True, activation=deepcopy(activation))
        )
        weight_init.c2_xavier_fill(image_pooling[1])
        self.convs.append(image_pooling)
        self.project = Conv2d(
            5 * out_channels,
            out_channels,
            kernel_size=1,
            bias=use_bias,
            norm=get_norm(norm, out_channels),
            activation=deepcopy(activation),
        )
        weight_init.c2_xavier_fill(self.project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        if self.pool_kernel_size is not None:
            if size[0] % self.pool_kernel_size[0] or size[1] % self.pool_kernel_size[1]:
                raise ValueError(
                    "`pool_kernel_size` must be divisible by the shape of inputs. "
                    f"Input size: {tuple(size)} `pool_kernel_size`: {self.pool_kernel_size}"
                )
        res = [conv(x) for conv in self.convs]
        res[-1] = F.interpolate(res[-1], size=size, mode="bilinear", align_corners=False)
        res = self.project(torch.cat(res, dim=1))
        return F.dropout(res, self.dropout, training=self.training) if self.dropout > 0 else res

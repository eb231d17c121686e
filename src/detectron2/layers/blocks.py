from typing import Callable, Optional, Union

from torch import nn

from . import _weight_init as weight_init
from .batch_norm import FrozenBatchNorm2d, get_norm
from .wrappers import Conv2d

__all__ = ["CNNBlockBase", "DepthwiseSeparableConv2d"]

NormSpec = Union[str, Callable[[int], nn.Module], None]


class CNNBlockBase(nn.Module):
    """A CNN block: a module with input and output channels and a stride, which can be
    frozen for fine-tuning. Subclasses implement forward(x) on NCHW tensors."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> "CNNBlockBase":
        """Stop training this block: parameters get requires_grad=False and every
        BatchNorm becomes a FrozenBatchNorm2d. Returns the block itself."""
        for p in self.parameters():
            p.requires_grad = False
        FrozenBatchNorm2d.convert_frozen_batchnorm(self)
        return self


class DepthwiseSeparableConv2d(nn.Module):
    """A depthwise k x k convolution followed by a pointwise 1x1 one, each with an
    optional norm and activation (as in MobileNet)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        dilation: int = 1,
        *,
        norm1: NormSpec = None,
        activation1: Optional[Callable] = None,
        norm2: NormSpec = None,
        activation2: Optional[Callable] = None,
    ):
        super().__init__()
        self.depthwise = Conv2d(
            in_channels,
            in_channels,
            kernel_size=kernel_size,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            bias=not norm1,
            norm=get_norm(norm1, in_channels),
            activation=activation1,
        )
        self.pointwise = Conv2d(
            in_channels,
            out_channels,
            kernel_size=1,
            bias=not norm2,
            norm=get_norm(norm2, out_channels),
            activation=activation2,
        )
        weight_init.c2_msra_fill(self.depthwise)
        weight_init.c2_msra_fill(self.pointwise)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))

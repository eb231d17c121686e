"""Deformable convolution v1 (:class:`DeformConv`) and v2 (:class:`ModulatedDeformConv`).

The kernels live in ``detectron2._C`` (CPU and CUDA). Offsets have
``2 * deformable_groups * kH * kW`` channels: for deformable group ``g`` and kernel tap
``k = i * kW + j``, channel ``2k`` is the vertical (y) and ``2k + 1`` the horizontal (x)
displacement, as in torchvision. The modulation mask has ``deformable_groups * kH * kW``
channels. Samples outside the image read zero.
"""
from typing import Optional, Tuple, Union

import torch
from torch import nn
from torch.autograd import Function
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from ._ops import load_C

__all__ = ["deform_conv", "modulated_deform_conv", "DeformConv", "ModulatedDeformConv"]

_IntOrPair = Union[int, Tuple[int, int]]


def _output_size(
    input: torch.Tensor, weight: torch.Tensor, stride, padding, dilation
) -> Tuple[int, int, int, int]:
    height, width = input.shape[2:4]
    kernel_h, kernel_w = weight.shape[2:4]
    out_h = (height + 2 * padding[0] - (dilation[0] * (kernel_h - 1) + 1)) // stride[0] + 1
    out_w = (width + 2 * padding[1] - (dilation[1] * (kernel_w - 1) + 1)) // stride[1] + 1
    return (input.size(0), weight.size(0), out_h, out_w)


def _as_pair(value: _IntOrPair) -> Tuple[int, int]:
    # torch's _pair, with the common int case first (it is on every call's host path).
    return (value, value) if isinstance(value, int) else _pair(value)


def _geometry(stride: _IntOrPair, padding: _IntOrPair, dilation: _IntOrPair) -> Tuple[int, ...]:
    """(stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w) for _C.deform_conv_layer."""
    return _as_pair(stride) + _as_pair(padding) + _as_pair(dilation)


def _upstream_args(weight: torch.Tensor, geometry: Tuple[int, ...], groups: int, deformable_groups: int):
    """The geometry in the order of upstream's _C backward functions: kW, kH, dW, dH, padW,
    padH, dilationW, dilationH, group, deformable_group."""
    stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w = geometry
    kh, kw = weight.shape[2:4]
    return (kw, kh, stride_w, stride_h, pad_w, pad_h, dilation_w, dilation_h, groups, deformable_groups)


def _new_buffer(like: torch.Tensor, zero: bool = False) -> torch.Tensor:
    """A contiguous output buffer for the _C functions (they write in place)."""
    make = torch.zeros if zero else torch.empty
    return make(like.shape, dtype=like.dtype, device=like.device)


# What the _C functions get for their `columns` and `ones` arguments, which they accept for
# upstream's signatures and ignore: one shared tensor instead of two allocations a call.
_UNUSED = torch.empty(0)


def _needs_grad(*tensors: Optional[torch.Tensor]) -> bool:
    return torch.is_grad_enabled() and any(getattr(t, "requires_grad", False) for t in tensors)


class _DeformConv(Function):
    # forward(input, offset, weight, stride, padding, dilation, groups, deformable_groups,
    # im2col_step): the arguments of deform_conv, which gives their defaults.
    @staticmethod
    def forward(
        ctx, input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, stride: _IntOrPair,
        padding: _IntOrPair, dilation: _IntOrPair, groups: int, deformable_groups: int, im2col_step: int,
    ) -> torch.Tensor:
        geometry = _geometry(stride, padding, dilation)
        output, ctx.im2col_step = load_C().deform_conv_layer(
            input, offset, weight, *geometry, groups, deformable_groups, im2col_step
        )
        ctx.args = _upstream_args(weight, geometry, groups, deformable_groups)
        ctx.save_for_backward(input, offset, weight)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        input, offset, weight = ctx.saved_tensors
        C = load_C()
        grad_input = grad_offset = grad_weight = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            grad_input, grad_offset = _new_buffer(input), _new_buffer(offset)
            C.deform_conv_backward_input(
                input, offset, grad_output, grad_input, grad_offset, weight, _UNUSED, *ctx.args, ctx.im2col_step
            )
        if ctx.needs_input_grad[2]:
            grad_weight = _new_buffer(weight, zero=True)
            C.deform_conv_backward_filter(
                input, offset, grad_output, grad_weight, _UNUSED, _UNUSED, *ctx.args, 1.0, ctx.im2col_step
            )
        return grad_input, grad_offset, grad_weight, None, None, None, None, None, None


class _ModulatedDeformConv(Function):
    # forward's arguments are modulated_deform_conv's, which gives their defaults.
    @staticmethod
    def forward(
        ctx, input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
        bias: Optional[torch.Tensor], stride: _IntOrPair, padding: _IntOrPair, dilation: _IntOrPair, groups: int,
        deformable_groups: int,
    ) -> torch.Tensor:
        geometry = _geometry(stride, padding, dilation)
        output = load_C().modulated_deform_conv_layer(
            input, offset, mask, weight, bias, *geometry, groups, deformable_groups
        )
        # Upstream's order for the backward: kernel_h, kernel_w, stride_h, stride_w, pad_h,
        # pad_w, dilation_h, dilation_w, group, deformable_group, with_bias.
        ctx.args = (*weight.shape[2:4], *geometry, groups, deformable_groups, bias is not None)
        ctx.save_for_backward(input, offset, mask, weight, bias)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        input, offset, mask, weight, bias = ctx.saved_tensors
        grad_input, grad_offset, grad_mask = (_new_buffer(t) for t in (input, offset, mask))
        grad_weight = _new_buffer(weight, zero=True)
        if bias is None:
            bias = grad_bias = _UNUSED  # _C ignores both without a bias
        else:
            grad_bias = _new_buffer(bias, zero=True)
        load_C().modulated_deform_conv_backward(
            input, weight, bias, _UNUSED, offset, mask, _UNUSED, grad_input, grad_weight, grad_bias, grad_offset,
            grad_mask, grad_output, *ctx.args,
        )
        grad_bias = grad_bias if ctx.needs_input_grad[4] else None
        return grad_input, grad_offset, grad_mask, grad_weight, grad_bias, None, None, None, None, None


def deform_conv(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    stride: _IntOrPair = 1,
    padding: _IntOrPair = 0,
    dilation: _IntOrPair = 1,
    groups: int = 1,
    deformable_groups: int = 1,
    im2col_step: int = 64,
) -> torch.Tensor:
    """Deformable convolution (v1). Without gradients to record it calls the kernels
    directly: an autograd Function costs tens of microseconds of host time per call."""
    if _needs_grad(input, offset, weight):
        return _DeformConv.apply(
            input, offset, weight, stride, padding, dilation, groups, deformable_groups, im2col_step
        )
    geometry = _geometry(stride, padding, dilation)
    return load_C().deform_conv_layer(input, offset, weight, *geometry, groups, deformable_groups, im2col_step)[0]


def modulated_deform_conv(
    input: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: _IntOrPair = 1,
    padding: _IntOrPair = 0,
    dilation: _IntOrPair = 1,
    groups: int = 1,
    deformable_groups: int = 1,
) -> torch.Tensor:
    """Modulated deformable convolution (v2); like :func:`deform_conv` without gradients to record."""
    if _needs_grad(input, offset, mask, weight, bias):
        return _ModulatedDeformConv.apply(
            input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups
        )
    geometry = _geometry(stride, padding, dilation)
    return load_C().modulated_deform_conv_layer(input, offset, mask, weight, bias, *geometry, groups, deformable_groups)


class _DeformConvBase(nn.Module):
    """The parameters, initialisation and empty-batch handling both variants share."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrPair,
        stride: _IntOrPair,
        padding: _IntOrPair,
        dilation: _IntOrPair,
        groups: int,
        deformable_groups: int,
        bias: bool,
        norm: Optional[nn.Module],
        activation,
    ):
        super().__init__()
        if in_channels % groups != 0:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups != 0:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.with_bias = bias
        self.norm = norm
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.constant_(self.bias, 0)

    def _empty_output(self, x: torch.Tensor) -> torch.Tensor:
        # Keeps the graph connected to the parameters so that an empty batch still trains.
        shape = _output_size(x, self.weight, self.stride, self.padding, self.dilation)
        out = x.new_zeros(shape) + self.weight.sum() * 0
        return out

    def _run(self, op, x: torch.Tensor, *operands: torch.Tensor) -> torch.Tensor:
        """op(x, *operands), then norm and activation. Under autocast the activations and
        offsets arrive in half precision beside float32 weights, and the kernels take one
        dtype for all operands: run the deformable conv in the weights' dtype."""
        device_type = x.device.type
        if not _autocast_enabled(device_type):
            return self._finish(op(x, *operands))
        dtype = self.weight.dtype
        with torch.autocast(device_type, enabled=False):
            return self._finish(op(x.to(dtype), *(t.to(dtype) for t in operands)))

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, groups={self.groups}, "
            f"deformable_groups={self.deformable_groups}, bias={self.with_bias}"
        )


class DeformConv(_DeformConvBase):
    """Deformable convolution (v1): ``forward(x, offset)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrPair,
        stride: _IntOrPair = 1,
        padding: _IntOrPair = 0,
        dilation: _IntOrPair = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
        norm: Optional[nn.Module] = None,
        activation=None,
    ):
        if bias:
            raise ValueError("DeformConv has no bias (bias=True is not supported); use ModulatedDeformConv")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deformable_groups,
            bias, norm, activation,
        )

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return self._finish(self._empty_output(x))
        return self._run(
            lambda x, offset: deform_conv(
                x, offset, self.weight, self.stride, self.padding, self.dilation, self.groups, self.deformable_groups
            ),
            x, offset,
        )


class ModulatedDeformConv(_DeformConvBase):
    """Modulated deformable convolution (v2): ``forward(x, offset, mask)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrPair,
        stride: _IntOrPair = 1,
        padding: _IntOrPair = 0,
        dilation: _IntOrPair = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
        norm: Optional[nn.Module] = None,
        activation=None,
    ):
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deformable_groups,
            bias, norm, activation,
        )

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return self._finish(self._empty_output(x))
        return self._run(
            lambda x, offset, mask: modulated_deform_conv(
                x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                self.deformable_groups,
            ),
            x, offset, mask,
        )


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no device argument
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()

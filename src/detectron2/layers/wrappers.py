"""Thin wrappers around torch.nn / torch.nn.functional that add what detection models
need: empty-batch safety, norm/activation folded into Conv2d, and helpers that behave
under scripting and tracing."""
from typing import Callable, List, Optional

import torch
from torch.nn import functional as F

__all__ = [
    "BatchNorm2d",
    "Conv2d",
    "ConvTranspose2d",
    "Linear",
    "cat",
    "check_if_dynamo_compiling",
    "cross_entropy",
    "disable_torch_compiler",
    "empty_input_loss_func_wrapper",
    "interpolate",
    "move_device_like",
    "nonzero_tuple",
    "shapes_to_tensor",
]

BatchNorm2d = torch.nn.BatchNorm2d
ConvTranspose2d = torch.nn.ConvTranspose2d
Linear = torch.nn.Linear
interpolate = F.interpolate


def shapes_to_tensor(x: List[int], device: Optional[torch.device] = None) -> torch.Tensor:
    """Turn a list of sizes into a tensor; while tracing, the sizes are already tensors
    and are stacked so that the trace records the dependency instead of a constant."""
    if torch.jit.is_scripting():
        return torch.as_tensor(x, device=device)
    if torch.jit.is_tracing():
        assert all(isinstance(t, torch.Tensor) for t in x), "Shape should be tensor during tracing!"
        ret = torch.stack(x)
        if ret.device != device:  # avoid recording a hard-coded device when it is unchanged
            ret = ret.to(device=device)
        return ret
    return torch.as_tensor(x, device=device)


def check_if_dynamo_compiling() -> bool:
    """Whether the caller runs inside torch.compile (dynamo) tracing."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return compiler.is_compiling()
    try:
        from torch._dynamo import is_compiling
    except ImportError:
        return False
    return is_compiling()


def disable_torch_compiler(func: Callable) -> Callable:
    """Decorator: run ``func`` eagerly under torch.compile (a graph break around it),
    for code dynamo cannot trace; a no-op where torch has no ``torch.compiler``."""
    compiler = getattr(torch, "compiler", None)
    if compiler is None or not hasattr(compiler, "disable"):
        return func
    return compiler.disable(func)


def cat(tensors: List[torch.Tensor], dim: int = 0) -> torch.Tensor:
    """torch.cat that skips the copy for a single tensor."""
    assert isinstance(tensors, (list, tuple))
    if len(tensors) == 1:
        return tensors[0]
    return torch.cat(tensors, dim)


def empty_input_loss_func_wrapper(loss_func: Callable) -> Callable:
    """Make a loss return a differentiable 0 (instead of NaN) on an empty batch with
    reduction="mean"."""

    def wrapped_loss_func(input, target, *, reduction="mean", **kwargs):
        if target.numel() == 0 and reduction == "mean":
            return input.sum() * 0.0  # connected to the graph, so backward still works
        return loss_func(input, target, reduction=reduction, **kwargs)

    return wrapped_loss_func


cross_entropy = empty_input_loss_func_wrapper(F.cross_entropy)


class _NewEmptyTensorOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, new_shape):
        ctx.shape = x.shape
        return x.new_empty(new_shape)

    @staticmethod
    def backward(ctx, grad):
        return _NewEmptyTensorOp.apply(grad, ctx.shape), None


class Conv2d(torch.nn.Conv2d):
    """torch.nn.Conv2d with two extra keyword arguments, applied after the convolution:

    - norm (nn.Module, optional): a normalization layer
    - activation (callable(Tensor) -> Tensor, optional)
    """

    def __init__(self, *args, **kwargs):
        norm = kwargs.pop("norm", None)
        activation = kwargs.pop("activation", None)
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x):
        # Empty inputs are fine for the convolution; SyncBatchNorm cannot reduce over them.
        if not torch.jit.is_scripting() and x.numel() == 0 and self.training:
            assert not isinstance(self.norm, torch.nn.SyncBatchNorm), "SyncBatchNorm does not support empty inputs!"
        x = self._conv_forward(x, self.weight, self.bias)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def nonzero_tuple(x: torch.Tensor):  # no return hint: a tuple in eager, a list when scripted
    """``x.nonzero(as_tuple=True)`` that also works under scripting, where as_tuple is
    not supported: one index tensor per dimension of ``x``."""
    if torch.jit.is_scripting():
        if x.dim() == 0:
            return x.unsqueeze(0).nonzero().unbind(1)
        return x.nonzero().unbind(1)
    return x.nonzero(as_tuple=True)


@torch.jit.script_if_tracing
def move_device_like(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """``src.to(dst.device)``, scripted while tracing so that the trace follows the
    device of ``dst`` rather than recording a fixed one."""
    return src.to(dst.device)

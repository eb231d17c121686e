"""Normalization layers for detection backbones and the ``get_norm`` factory."""
import logging
from typing import Callable, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd.function import Function
from torch.nn import functional as F

from ._derived_cache import cacheable, cached
from .wrappers import BatchNorm2d

__all__ = ["FrozenBatchNorm2d", "get_norm", "NaiveSyncBatchNorm", "CycleBatchNormList", "LayerNorm"]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are fixed buffers.

    The buffers keep BatchNorm's names (weight, bias, running_mean, running_var), so
    checkpoints of either load into the other. With eval-mode inputs it runs
    F.batch_norm; when the input needs a gradient it folds the statistics into one
    scale and shift, which saves memory in backward.
    """

    _version = 3

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            if torch.jit.is_scripting():
                scale, bias = self._fold(x.dtype)
            else:
                scale, bias = self._folded(x.dtype)
            return x * scale + bias
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )

    def _fold(self, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return scale.reshape(1, -1, 1, 1).to(dtype), bias.reshape(1, -1, 1, 1).to(dtype)

    @torch.jit.unused
    def _folded(self, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """(scale, bias) of the frozen statistics, computed once and reused while the
        buffers stay as they are: a training step then runs 2 ops per layer instead of 7
        (the same values: the same ops on the same buffers)."""
        buffers = [self.weight, self.bias, self.running_mean, self.running_var]
        if not cacheable(buffers):
            return self._fold(dtype)
        return cached(self, "_folded_cache", buffers, (dtype, self.eps), lambda: self._fold(dtype))

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            # Version 1 had no running statistics: they are the identity.
            if prefix + "running_mean" not in state_dict:
                state_dict[prefix + "running_mean"] = torch.zeros_like(self.running_mean)
            if prefix + "running_var" not in state_dict:
                state_dict[prefix + "running_var"] = torch.ones_like(self.running_var)
        if version is not None and version < 3:
            # Before version 3, forward used running_var without adding eps.
            logging.getLogger(__name__).info(f"FrozenBatchNorm {prefix.rstrip('.')} is upgraded to version 3.")
            # (absent when the checkpoint lacks it or its shape did not match: nothing to upgrade)
            if prefix + "running_var" in state_dict:
                state_dict[prefix + "running_var"] = state_dict[prefix + "running_var"] - self.eps
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def __repr__(self):
        return f"FrozenBatchNorm2d(num_features={self.num_features}, eps={self.eps})"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """Replace every BatchNorm2d / SyncBatchNorm in ``module`` by a FrozenBatchNorm2d
        holding its current statistics. Children are replaced in place; when ``module``
        itself is a BatchNorm, the new module is returned."""
        if isinstance(module, (nn.modules.batchnorm.BatchNorm2d, nn.modules.batchnorm.SyncBatchNorm)):
            frozen = cls(module.num_features)
            if module.affine:
                frozen.weight.data = module.weight.data.clone().detach()
                frozen.bias.data = module.bias.data.clone().detach()
            frozen.running_mean.data = module.running_mean.data
            frozen.running_var.data = module.running_var.data
            frozen.eps = module.eps
            return frozen
        for name, child in module.named_children():
            new_child = cls.convert_frozen_batchnorm(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module

    @classmethod
    def convert_frozenbatchnorm2d_to_batchnorm2d(cls, module: nn.Module) -> nn.Module:
        """The inverse of convert_frozen_batchnorm: FrozenBatchNorm2d -> trainable BatchNorm2d."""
        if isinstance(module, FrozenBatchNorm2d):
            bn = torch.nn.BatchNorm2d(module.num_features, module.eps)
            bn.weight.data = module.weight.data.clone().detach()
            bn.bias.data = module.bias.data.clone().detach()
            bn.running_mean.data = module.running_mean.data.clone().detach()
            bn.running_var.data = module.running_var.data.clone().detach()
            return bn
        for name, child in module.named_children():
            new_child = cls.convert_frozenbatchnorm2d_to_batchnorm2d(child)
            if new_child is not child:
                module.add_module(name, new_child)
        return module


def get_norm(norm: Union[str, Callable[[int], nn.Module], None], out_channels: int) -> Optional[nn.Module]:
    """
    Args:
        norm (str or callable): one of "BN", "SyncBN", "FrozenBN", "GN", "nnSyncBN",
            "naiveSyncBN", "naiveSyncBN_N", "LN"; or a callable that takes a channel
            count and returns the layer. None or "" means no normalization.

    Returns:
        nn.Module or None: the normalization layer
    """
    if norm is None:
        return None
    if isinstance(norm, str):
        if len(norm) == 0:
            return None
        factories = {
            "BN": BatchNorm2d,
            "SyncBN": nn.SyncBatchNorm,
            "FrozenBN": FrozenBatchNorm2d,
            "GN": lambda channels: nn.GroupNorm(32, channels),
            "nnSyncBN": nn.SyncBatchNorm,  # kept for configs written for old torch
            "naiveSyncBN": NaiveSyncBatchNorm,
            "naiveSyncBN_N": lambda channels: NaiveSyncBatchNorm(channels, stats_mode="N"),
            "LN": lambda channels: LayerNorm(channels),
        }
        if norm not in factories:
            raise KeyError(f"get_norm: unknown norm {norm!r}; expected one of {sorted(factories)} or a callable")
        norm = factories[norm]
    return norm(out_channels)


def _world_size() -> int:
    if not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


class _AllReduceSum(Function):
    """Sum over processes that gradients flow through. Gathers then sums locally, so
    every rank adds the same numbers in the same order (bit-identical results)."""

    @staticmethod
    def forward(ctx, input: torch.Tensor) -> torch.Tensor:
        gathered = [torch.zeros_like(input) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, input, async_op=False)
        return torch.stack(gathered, dim=0).sum(dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad_output = grad_output.clone()
        dist.all_reduce(grad_output, async_op=False)
        return grad_output


AllReduce = _AllReduceSum
"""Upstream's name for the differentiable all-reduce (sum) used by NaiveSyncBatchNorm."""


class NaiveSyncBatchNorm(BatchNorm2d):
    """SyncBatchNorm built from one all-gather of per-process statistics.

    stats_mode="" weighs every process equally (each needs a non-empty batch, like
    nn.SyncBatchNorm); stats_mode="N" weighs each by its batch size and accepts empty
    batches. Running statistics are updated with the biased batch variance.
    """

    def __init__(self, *args, stats_mode: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        assert stats_mode in ["", "N"], f"stats_mode must be '' or 'N', got {stats_mode!r}"
        self._stats_mode = stats_mode

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        world_size = _world_size()
        if world_size == 1 or not self.training:
            return super().forward(input)
        B, C = input.shape[0], input.shape[1]
        half_input = input.dtype == torch.float16
        if half_input:
            input = input.float()  # statistics in float16 overflow easily
        mean = torch.mean(input, dim=[0, 2, 3])
        meansqr = torch.mean(input * input, dim=[0, 2, 3])
        if self._stats_mode == "":
            assert B > 0, 'SyncBatchNorm(stats_mode="") does not support zero batch size.'
            vec = _AllReduceSum.apply(torch.cat([mean, meansqr], dim=0)) * (1.0 / world_size)
            mean, meansqr = torch.split(vec, C)
            momentum = self.momentum
        else:
            if B == 0:
                vec = torch.zeros([2 * C + 1], device=mean.device, dtype=mean.dtype)
                vec = vec + input.sum() * 0.0  # keep input in the graph
            else:
                vec = torch.cat([mean, meansqr, torch.ones([1], device=mean.device, dtype=mean.dtype)], dim=0)
            vec = _AllReduceSum.apply(vec * B)
            total_batch = vec[-1].detach()
            momentum = total_batch.clamp(max=1) * self.momentum  # no update when all batches are empty
            mean, meansqr, _ = torch.split(vec / total_batch.clamp(min=1), C)
        var = meansqr - mean * mean
        invstd = torch.rsqrt(var + self.eps)
        scale = self.weight * invstd
        bias = self.bias - mean * scale
        scale = scale.reshape(1, -1, 1, 1)
        bias = bias.reshape(1, -1, 1, 1)
        self.running_mean += momentum * (mean.detach() - self.running_mean)
        self.running_var += momentum * (var.detach() - self.running_var)
        ret = input * scale + bias
        if half_input:
            ret = ret.half()
        return ret


class CycleBatchNormList(nn.ModuleList):
    """A list of BatchNorm layers used in turn, one per call: for a module applied to
    several inputs of different statistics (e.g. FPN levels), each gets its own
    statistics while the optional affine transform is shared."""

    def __init__(self, length: int, bn_class=nn.BatchNorm2d, **kwargs):
        """
        Args:
            length: number of BatchNorm layers to cycle through.
            bn_class: the BatchNorm class to build them with.
            kwargs: passed to bn_class; "affine" controls the shared affine transform.
        """
        self._affine = kwargs.pop("affine", True)
        super().__init__([bn_class(**kwargs, affine=False) for _ in range(length)])
        if self._affine:
            channels = self[0].num_features
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        self._pos = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ret = self[self._pos](x)
        self._pos = (self._pos + 1) % len(self)
        if self._affine:
            return ret * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)
        return ret

    def extra_repr(self):
        return f"affine={self._affine}"


class LayerNorm(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (as in ConvNeXt)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.eps = eps
        self.normalized_shape = (normalized_shape,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]

"""Caffe2-style weight initializations (the same as fvcore.nn.weight_init), kept here
because importing fvcore.nn scripts its losses with torch.jit at import time, which
slows down and warns on every ``import detectron2.layers``."""
from torch import nn


def c2_xavier_fill(module: nn.Module) -> None:
    """Caffe2's XavierFill: uniform with bound sqrt(3 / fan_in)."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


def c2_msra_fill(module: nn.Module) -> None:
    """Caffe2's MSRAFill: normal with std sqrt(2 / fan_out)."""
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)

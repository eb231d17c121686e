"""FLOP, activation and parameter counts of detectron2 models (through fvcore), which
take a list of dicts as input and return structures such as Instances."""
import collections
import typing
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from detectron2.structures import Instances
from detectron2.utils._fvcore_nn import fvcore_nn  # fvcore.nn without its import-time warning

activation_count, flop_count = fvcore_nn.activation_count, fvcore_nn.flop_count
parameter_count, parameter_count_table = fvcore_nn.parameter_count, fvcore_nn.parameter_count_table

__all__ = [
    "activation_count_operators",
    "flop_count_operators",
    "parameter_count_table",
    "parameter_count",
    "FlopCountAnalysis",
    "ActivationCountAnalysis",
    "find_unused_parameters",
]

FLOPS_MODE = "flops"
ACTIVATIONS_MODE = "activations"

# Cheap element-wise or data-movement ops that should not count, and NMS, which has
# no meaningful FLOP formula.
_IGNORED_OPS = {
    "aten::add",
    "aten::add_",
    "aten::argmax",
    "aten::argsort",
    "aten::batch_norm",
    "aten::constant_pad_nd",
    "aten::div",
    "aten::div_",
    "aten::exp",
    "aten::log2",
    "aten::max_pool2d",
    "aten::meshgrid",
    "aten::mul",
    "aten::mul_",
    "aten::neg",
    "aten::nonzero_numpy",
    "aten::reciprocal",
    "aten::repeat_interleave",
    "aten::rsub",
    "aten::sigmoid",
    "aten::sigmoid_",
    "aten::softmax",
    "aten::sort",
    "aten::sqrt",
    "aten::sub",
    "torchvision::nms",
}


class _Slot:
    """Where the i-th flattened input tensor goes back in the nested inputs."""

    def __init__(self, index: int):
        self.index = index


def _flatten_inputs(obj: Any, tensors: List[torch.Tensor]) -> Any:
    """Move every tensor in nested lists/tuples/dicts into ``tensors`` and return the
    structure with a _Slot in its place; other leaves stay as constants."""
    if isinstance(obj, torch.Tensor):
        tensors.append(obj)
        return _Slot(len(tensors) - 1)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_flatten_inputs(x, tensors) for x in obj)
    if isinstance(obj, dict):
        return {k: _flatten_inputs(v, tensors) for k, v in obj.items()}
    return obj


def _rebuild_inputs(schema: Any, tensors: Tuple[torch.Tensor, ...]) -> Any:
    if isinstance(schema, _Slot):
        return tensors[schema.index]
    if isinstance(schema, (list, tuple)):
        return type(schema)(_rebuild_inputs(x, tensors) for x in schema)
    if isinstance(schema, dict):
        return {k: _rebuild_inputs(v, tensors) for k, v in schema.items()}
    return schema


def _output_tensors(obj: Any) -> List[torch.Tensor]:
    """All tensors in a model output: nested lists/tuples/dicts, Instances fields and
    structures holding a ``.tensor`` (Boxes, masks...)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _output_tensors(x)]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _output_tensors(v)]
    if isinstance(obj, Instances):
        return _output_tensors(obj.get_fields())
    inner = getattr(obj, "tensor", None)
    return [inner] if isinstance(inner, torch.Tensor) else []


class _FlatModel(nn.Module):
    """Runs ``model(inputs)`` as ``forward(*tensors) -> tuple of tensors``, the form
    that torch.jit tracing (and so fvcore) needs."""

    def __init__(self, model: nn.Module, inputs: Any):
        super().__init__()
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        self.model = model
        tensors: List[torch.Tensor] = []
        self._schema = _flatten_inputs(inputs, tensors)
        if not tensors:
            raise ValueError("inputs contain no tensor to trace the model with")
        self.flattened_inputs = tuple(tensors)

    def forward(self, *tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(_output_tensors(self.model(_rebuild_inputs(self._schema, tensors))))


class FlopCountAnalysis(fvcore_nn.FlopCountAnalysis):
    """fvcore's FlopCountAnalysis for models with detectron2-style inputs (e.g. a list
    of {"image": tensor} dicts), ignoring the ops in ``_IGNORED_OPS``. Counts are
    multiply-accumulates, as in fvcore. Put the model in eval mode first."""

    def __init__(self, model: nn.Module, inputs: Any):
        wrapper = _FlatModel(model, inputs)
        super().__init__(wrapper, wrapper.flattened_inputs)
        self.set_op_handle(**{k: None for k in _IGNORED_OPS})


class ActivationCountAnalysis(fvcore_nn.ActivationCountAnalysis):
    """fvcore's ActivationCountAnalysis (output elements of convolutions and matmuls)
    for models with detectron2-style inputs."""

    def __init__(self, model: nn.Module, inputs: Any):
        wrapper = _FlatModel(model, inputs)
        super().__init__(wrapper, wrapper.flattened_inputs)
        self.set_op_handle(**{k: None for k in _IGNORED_OPS})


def _image_only_inputs(inputs: list) -> list:
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
        raise ValueError("inputs must be a list of exactly one dict (use batch size 1)")
    if not isinstance(inputs[0], dict) or "image" not in inputs[0]:
        raise ValueError("inputs[0] must be a dict with an 'image' tensor")
    return [{"image": inputs[0]["image"]}]  # other keys (e.g. "instances") are not model inputs here


def flop_count_operators(model: nn.Module, inputs: list) -> typing.DefaultDict[str, float]:
    """GFLOPs (multiply-accumulates) of each operator type for one inference of
    ``model`` on ``inputs`` (a list of dicts in the model's input format). The model
    runs in eval mode; its training flag is restored afterwards."""
    old_train = model.training
    model.eval()
    try:
        ret = FlopCountAnalysis(model, inputs).by_operator()
    finally:
        model.train(old_train)
    return collections.defaultdict(float, {k: v / 1e9 for k, v in ret.items()})


def activation_count_operators(model: nn.Module, inputs: list, **kwargs) -> typing.DefaultDict[str, float]:
    """Millions of activations of each operator type for one inference on a batch of
    one image; only the "image" of ``inputs[0]`` is used. Extra kwargs go to fvcore's
    activation_count (e.g. ``supported_ops``)."""
    return _wrapper_count_operators(model=model, inputs=inputs, mode=ACTIVATIONS_MODE, **kwargs)


def _wrapper_count_operators(model: nn.Module, inputs: list, mode: str, **kwargs) -> Dict[str, float]:
    counters = {FLOPS_MODE: flop_count, ACTIVATIONS_MODE: activation_count}
    if mode not in counters:
        raise ValueError(f"mode must be {FLOPS_MODE!r} or {ACTIVATIONS_MODE!r}, got {mode!r}")
    supported_ops = {k: lambda *args, **kw: {} for k in _IGNORED_OPS}
    supported_ops.update(kwargs.pop("supported_ops", {}))
    kwargs["supported_ops"] = supported_ops
    inputs = _image_only_inputs(inputs)
    old_train = model.training
    wrapper = _FlatModel(model, inputs)
    wrapper.eval()
    try:
        ret = counters[mode](wrapper, wrapper.flattened_inputs, **kwargs)
    finally:
        model.train(old_train)
    # fvcore returns (counts, skipped ops).
    return ret[0] if isinstance(ret, tuple) else ret


def find_unused_parameters(model: nn.Module, inputs: Any) -> List[str]:
    """Names of the parameters that get no gradient from one training step on
    ``inputs``: the sum of all outputs (e.g. the loss dict) is back-propagated. Such
    parameters make DistributedDataParallel fail unless find_unused_parameters=True.
    Gradients are cleared afterwards and the training flag restored."""
    old_train = model.training
    model.train()
    try:
        outputs = [t for t in _output_tensors(model(inputs)) if t.requires_grad]
        if outputs:
            sum(x.sum() for x in outputs).backward()
        unused = []
        for name, prm in model.named_parameters():
            if prm.grad is None:
                unused.append(name)
            prm.grad = None
    finally:
        model.train(old_train)
    return unused

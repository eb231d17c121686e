"""Flattening rich inputs/outputs (lists, dicts, Instances, Boxes) into tuples of tensors,
with schemas that rebuild them, and TracingAdapter, which makes models traceable with it."""
import collections.abc
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from detectron2.structures import Boxes, Instances, ROIMasks
from detectron2.utils.registry import _convert_target_to_string, locate

from .torchscript_patch import patch_builtin_len

__all__ = [
    "Schema",
    "ListSchema",
    "TupleSchema",
    "IdentitySchema",
    "DictSchema",
    "InstancesSchema",
    "TensorWrapSchema",
    "flatten_to_tuple",
    "TracingAdapter",
]


@dataclass
class Schema:
    """How one object was flattened into a tuple, and how to rebuild it from one.

    ``Schema.flatten(obj)`` returns ``(values, schema)``; ``schema(values)`` rebuilds obj.
    Schemas are plain dataclasses, so they compare with ``==`` and serialize easily.
    """

    @classmethod
    def flatten(cls, obj: Any) -> Tuple[tuple, "Schema"]:
        """The base class picks the schema that fits ``obj`` (as flatten_to_tuple does)."""
        return flatten_to_tuple(obj)

    def __call__(self, values: Sequence[Any]) -> Any:
        # Only subclasses know a layout; a bare Schema records none.
        raise TypeError("Schema is an abstract base: rebuild with the schema returned by flatten_to_tuple()")

    @staticmethod
    def _concat(values: Sequence[tuple]) -> Tuple[tuple, List[int]]:
        out: tuple = ()
        sizes = []
        for v in values:
            if not isinstance(v, tuple):
                raise TypeError(f"Schema: flattened results must be tuples, got {type(v)}")
            out += v
            sizes.append(len(v))
        return out, sizes

    @staticmethod
    def _split(values: Sequence[Any], sizes: List[int]) -> List[Sequence[Any]]:
        if len(sizes) and len(values) != sum(sizes):
            raise ValueError(f"Schema: values has length {len(values)} but the schema expects {sum(sizes)}")
        out, start = [], 0
        for n in sizes:
            out.append(values[start : start + n])
            start += n
        return out


@dataclass
class ListSchema(Schema):
    schemas: List[Schema]  # how each element was flattened
    sizes: List[int]  # the flattened length of each element

    def __call__(self, values: Sequence[Any]) -> list:
        parts = self._split(values, self.sizes)
        if len(parts) != len(self.schemas):
            raise ValueError(f"Values has length {len(parts)} but schemas has length {len(self.schemas)}!")
        return [s(v) for s, v in zip(self.schemas, parts)]

    @classmethod
    def flatten(cls, obj: Sequence[Any]) -> Tuple[tuple, "ListSchema"]:
        flat = [flatten_to_tuple(x) for x in obj]
        values, sizes = cls._concat([f[0] for f in flat])
        return values, cls([f[1] for f in flat], sizes)


@dataclass
class TupleSchema(ListSchema):
    def __call__(self, values: Sequence[Any]) -> tuple:
        return tuple(super().__call__(values))


@dataclass
class IdentitySchema(Schema):
    """A leaf: the object is its own flattened form (tensors, numbers, strings)."""

    def __call__(self, values: Sequence[Any]) -> Any:
        return values[0]

    @classmethod
    def flatten(cls, obj: Any) -> Tuple[tuple, "IdentitySchema"]:
        return (obj,), cls()


@dataclass
class DictSchema(ListSchema):
    keys: List[str]

    def __call__(self, values: Sequence[Any]) -> dict:
        return dict(zip(self.keys, super().__call__(values)))

    @classmethod
    def flatten(cls, obj: collections.abc.Mapping) -> Tuple[tuple, "DictSchema"]:
        for k in obj.keys():
            if not isinstance(k, str):
                raise KeyError(f"Only dictionaries with str keys can be flattened, got key {k!r}")
        keys = sorted(obj.keys())  # a fixed order, independent of insertion order
        values, schema = ListSchema.flatten([obj[k] for k in keys])
        return values, cls(schema.schemas, schema.sizes, keys)


@dataclass
class InstancesSchema(DictSchema):
    """Fields in key order, then the image size as a tensor."""

    def __call__(self, values: Sequence[Any]) -> Instances:
        image_size, fields = values[-1], values[:-1]
        return Instances(image_size, **super().__call__(fields))

    @classmethod
    def flatten(cls, obj: Instances) -> Tuple[tuple, "InstancesSchema"]:
        values, schema = super().flatten(obj.get_fields())
        size = obj.image_size
        if not isinstance(size, torch.Tensor):
            size = torch.tensor(size)
        return values + (size,), schema


@dataclass
class TensorWrapSchema(Schema):
    """Classes that wrap one tensor and are built from it: Boxes, RotatedBoxes, ROIMasks..."""

    class_name: str

    def __call__(self, values: Sequence[Any]) -> Any:
        return locate(self.class_name)(values[0])

    @classmethod
    def flatten(cls, obj: Any) -> Tuple[tuple, "TensorWrapSchema"]:
        return (obj.tensor,), cls(_convert_target_to_string(type(obj)))


def _schema_for(obj: Any) -> type:
    rules = [
        ((str, bytes), IdentitySchema),
        (list, ListSchema),
        (tuple, TupleSchema),
        (collections.abc.Mapping, DictSchema),
        (Instances, InstancesSchema),
        ((Boxes, ROIMasks), TensorWrapSchema),
    ]
    for klass, schema in rules:
        if isinstance(obj, klass):
            return schema
    return IdentitySchema


def flatten_to_tuple(obj: Any) -> Tuple[tuple, Schema]:
    """Flatten ``obj`` into a tuple usable as tracing inputs/outputs.

    Returns ``(values, schema)`` where ``schema(values)`` rebuilds an object equal to obj;
    the schema is a plain dataclass that can be serialized.
    """
    return _schema_for(obj).flatten(obj)


class TracingAdapter(nn.Module):
    """Makes a model with rich inputs/outputs (dicts, Instances, ...) traceable.

    ``torch.jit.trace`` takes and returns tuples of tensors only. The adapter flattens the
    given inputs (``flattened_inputs``) and, when called with flattened inputs, rebuilds
    them with ``inputs_schema``, runs the model and returns its flattened outputs; it
    records ``outputs_schema`` to rebuild those outputs::

        adapter = TracingAdapter(model, inputs)
        traced = torch.jit.trace(adapter, adapter.flattened_inputs)
        outputs = adapter.outputs_schema(traced(*adapter.flattened_inputs))
    """

    flattened_inputs: Tuple[torch.Tensor, ...] = None
    """The flattened form of the inputs given to the constructor."""
    inputs_schema: Optional[Schema] = None
    """The schema of the inputs given to the constructor."""
    outputs_schema: Optional[Schema] = None
    """The schema of the outputs of the model (set by the first call)."""

    def __init__(
        self,
        model: nn.Module,
        inputs: Any,
        inference_func: Optional[Callable] = None,
        allow_non_tensor: bool = False,
    ):
        """
        Args:
            model: the model; a (Distributed)DataParallel is unwrapped.
            inputs: one input argument, or a tuple of them, to call the model with.
                Once flattened it must consist of tensors only.
            inference_func: ``f(model, *inputs) -> outputs``; defaults to ``model(*inputs)``.
            allow_non_tensor: drop non-tensor inputs/outputs instead of raising. The
                schemas are then unusable (None): the trace only replays these inputs.
        """
        super().__init__()
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        self.model = model
        if not isinstance(inputs, tuple):
            inputs = (inputs,)
        self.inputs = inputs
        self.allow_non_tensor = allow_non_tensor
        self.inference_func = inference_func if inference_func is not None else _call_model

        self.flattened_inputs, self.inputs_schema = flatten_to_tuple(inputs)
        if all(isinstance(x, torch.Tensor) for x in self.flattened_inputs):
            return
        if not allow_non_tensor:
            bad = next(x for x in self.flattened_inputs if not isinstance(x, torch.Tensor))
            raise ValueError(f"Inputs for tracing must only contain tensors. Got a {type(bad)} instead.")
        self.flattened_inputs = tuple(x for x in self.flattened_inputs if isinstance(x, torch.Tensor))
        self.inputs_schema = None

    def forward(self, *args: torch.Tensor) -> tuple:
        with torch.no_grad(), patch_builtin_len():
            if self.inputs_schema is not None:
                inputs = self.inputs_schema(args)
            else:
                same = len(args) == len(self.flattened_inputs) and all(
                    x is y for x, y in zip(args, self.flattened_inputs)
                )
                if not same:
                    raise ValueError(
                        "TracingAdapter has no inputs_schema (allow_non_tensor=True), so it cannot "
                        "generalize to other inputs and must be called with `.flattened_inputs`."
                    )
                inputs = self.inputs
            outputs = self.inference_func(self.model, *inputs)
            flat, schema = flatten_to_tuple(outputs)
            tensors = tuple(x for x in flat if isinstance(x, torch.Tensor))
            if len(tensors) < len(flat):
                if not self.allow_non_tensor:
                    raise ValueError("Model cannot be traced because some model outputs cannot flatten to tensors.")
                self.outputs_schema = None
                return tensors
            if self.outputs_schema is None:
                self.outputs_schema = schema
            elif self.outputs_schema != schema:
                raise AssertionError("Model should always return outputs with the same structure so it can be traced!")
            return flat

    def _create_wrapper(self, traced_model: Callable) -> Callable:
        """A function with the model's own input/output format that runs ``traced_model``."""

        def forward(*args):
            flat_inputs, _ = flatten_to_tuple(args)
            return self.outputs_schema(traced_model(*flat_inputs))

        return forward


def _call_model(model: nn.Module, *inputs: Any) -> Any:
    return model(*inputs)

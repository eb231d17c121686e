"""Patches that make detectron2 models scriptable without changing their eager behaviour.

The central one is :func:`patch_instances`: TorchScript needs statically typed classes,
but :class:`Instances` holds fields added at run time. Inside the context, TorchScript
compiles a generated class with one typed, optional attribute per declared field wherever
model code refers to ``Instances``.
"""
import importlib.util
import itertools
import keyword
import os
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from typing import Dict, Iterator, List, Sequence, Tuple
from unittest import mock

import torch
from torch import nn

from detectron2.structures import Instances

__all__ = ["patch_instances", "patch_builtin_len", "freeze_training_mode", "patch_nonscriptable_classes"]

# Each generated class gets a new name: TorchScript caches compiled classes by name.
_class_ids = itertools.count(1)


def _clear_jit_cache() -> None:
    """Forget compiled modules/functions that may refer to an earlier generated class."""
    from torch.jit._recursive import concrete_type_store
    from torch.jit._state import _jit_caching_layer

    concrete_type_store.type_store.clear()
    _jit_caching_layer.clear()


def _annotation(type_: type) -> str:
    """The name of ``type_`` in the generated source (imported there under this alias:
    TorchScript does not resolve dotted class names in annotations)."""
    if type_ is torch.Tensor:
        return "torch.Tensor"
    return f"_{type_.__name__}_{id(type_):x}"


def _check_fields(fields: Dict[str, type]) -> List[Tuple[str, type]]:
    if not isinstance(fields, dict) or not fields:
        raise ValueError(f"patch_instances: fields must be a non-empty dict of name -> type, got {fields!r}")
    out = []
    for name, type_ in fields.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise ValueError(f"patch_instances: field name must be a public identifier, got {name!r}")
        if isinstance(type_, str):  # upstream's older API took annotation strings such as "Tensor"
            type_ = {"Tensor": torch.Tensor, "torch.Tensor": torch.Tensor}.get(type_) or _locate_type(type_)
        if not isinstance(type_, type) or type_.__module__ in ("builtins", "__main__"):
            raise TypeError(
                f"patch_instances: field {name!r} must map to torch.Tensor or a class importable from "
                f"its module (e.g. Boxes), got {type_!r}"
            )
        out.append((name, type_))
    return out


def _locate_type(name: str) -> type:
    from detectron2.utils.registry import locate

    if "." not in name:
        name = "detectron2.structures." + name
    return locate(name)


def _class_source(cls_name: str, fields: Sequence[Tuple[str, type]]) -> str:
    """Source of a TorchScript class with the API of Instances for these fields."""
    names = tuple(n for n, _ in fields)
    # Fields may be given to the constructor by keyword, as Instances(size, **fields) takes them.
    kwargs = "".join(f", {n}: Optional[{_annotation(t)}] = None" for n, t in fields)
    src = [
        f"class {cls_name}:",
        f"    def __init__(self, image_size: Tuple[int, int]{kwargs}):",
        "        self.image_size = image_size",
        f"        self._field_names = {names!r}",
    ]
    src += [f"        self._{n} = {n}" for n, _ in fields]
    for n, t in fields:
        ann = _annotation(t)
        src += [
            "",
            "    @property",
            f"    def {n}(self) -> {ann}:",
            f"        v = self._{n}",  # a local is needed for Optional refinement
            f"        assert v is not None, 'field {n} is not set'",
            "        return v",
            "",
            f"    @{n}.setter",
            f"    def {n}(self, value: {ann}) -> None:",
            f"        self._{n} = value",
        ]
    # Inside the class TorchScript ignores the constructor's defaults: pass every field.
    new_empty = f"        ret = {cls_name}(self.image_size" + ", None" * len(fields) + ")"
    # __len__: the length of the first field that is set.
    src += ["", "    def __len__(self) -> int:"]
    for n, _ in fields:
        src += [f"        v = self._{n}", "        if v is not None:", "            return len(v)"]
    src += ["        raise RuntimeError('Empty Instances does not support __len__!')"]
    # has(name)
    src += ["", "    def has(self, name: str) -> bool:"]
    for n, _ in fields:
        src += [f"        if name == {n!r}:", f"            return self._{n} is not None"]
    src += ["        return False"]
    # to(device): fields without a `to` method are left out, as they cannot move.
    src += ["", f"    def to(self, device: torch.device) -> '{cls_name}':", new_empty]
    for n, t in fields:
        if hasattr(t, "to"):
            src += [f"        v = self._{n}", "        if v is not None:", f"            ret._{n} = v.to(device)"]
    src += ["        return ret"]
    # __getitem__: index every field that is set.
    src += ["", f"    def __getitem__(self, item: torch.Tensor) -> '{cls_name}':", new_empty]
    for n, _ in fields:
        src += [f"        v = self._{n}", "        if v is not None:", f"            ret._{n} = v[item]"]
    src += ["        return ret"]
    # cat(instances): concatenates every field the first element has (as Instances.cat).
    src += ["", f"    def cat(self, instances: List['{cls_name}']) -> '{cls_name}':", new_empty]
    for n, t in fields:
        ann = _annotation(t)
        # Structures (Boxes, RotatedBoxes, ...) wrap one tensor, which is what is joined.
        joined = "torch.cat(values, dim=0)" if t is torch.Tensor else f"{ann}(torch.cat([x.tensor for x in values], dim=0))"
        src += [
            f"        if self._{n} is not None:",
            f"            values: List[{ann}] = []",
            "            for other in instances:",
            f"                v = other._{n}",
            f"                assert v is not None, 'Instances.cat: field {n} is missing in some element'",
            "                values.append(v)",
            f"            ret._{n} = {joined}",
        ]
    src += ["        return ret"]
    header = [
        "import torch",
        "from torch import Tensor",
        "from typing import Dict, List, Optional, Tuple",
        "import detectron2",
        "import detectron2.structures",
    ]
    for t in {t for _, t in fields if t is not torch.Tensor}:
        header.append(f"from {t.__module__} import {t.__name__} as {_annotation(t)}")
    return "\n".join(header + ["", ""] + src) + "\n"


def _import_file(module_name: str, path: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _add_conversion_methods(new_cls: type) -> None:
    """Eager-only helpers to go between the generated class and Instances."""

    @torch.jit.unused
    def to_instances(self) -> Instances:
        ret = Instances(self.image_size)
        for name in self._field_names:
            val = getattr(self, "_" + name, None)
            if val is not None:
                ret.set(name, val)
        return ret

    @torch.jit.unused
    def from_instances(instances: Instances):
        ret = new_cls(instances.image_size)
        for name, val in instances.get_fields().items():
            if not hasattr(ret, "_" + name):
                raise ValueError(f"from_instances: field {name!r} is not one of {new_cls.__name__}'s fields")
            setattr(ret, name, deepcopy(val))
        return ret

    new_cls.to_instances = to_instances
    new_cls.from_instances = staticmethod(from_instances)


def _script_helper_classes() -> None:
    """Compile the plain (non-Module) classes that modules hold as attributes, so that
    TorchScript can type those attributes."""
    from detectron2.modeling.box_regression import Box2BoxTransform, Box2BoxTransformLinear, Box2BoxTransformRotated
    from detectron2.modeling.matcher import Matcher

    for cls in (Box2BoxTransform, Box2BoxTransformRotated, Box2BoxTransformLinear, Matcher):
        rcb = torch._jit_internal.createResolutionCallbackForClassMethods(cls)
        torch.jit.script(cls, _rcb=rcb)


@contextmanager
def patch_instances(fields: Dict[str, type]) -> Iterator[type]:
    """Within the context, TorchScript compiles ``Instances`` as a statically typed class
    with the given fields (name -> type, e.g. ``{"pred_boxes": Boxes, "scores": Tensor}``).

    Yields the generated class. Eager code is unaffected; on exit Instances is restored.
    """
    checked = _check_fields(fields)
    cls_name = f"ScriptedInstances{next(_class_ids)}"
    module_name = f"{__name__}_{cls_name}"
    with tempfile.TemporaryDirectory(prefix="detectron2") as tmpdir:
        path = os.path.join(tmpdir, f"{cls_name}.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(_class_source(cls_name, checked))
        _clear_jit_cache()  # compiled code may refer to the class of an earlier context
        _script_helper_classes()
        try:
            module = _import_file(module_name, path)
            new_cls = getattr(module, cls_name)
            # Compile now, while the source file exists; names resolve in the generated module.
            rcb = torch._jit_internal.createResolutionCallbackForClassMethods(new_cls)
            torch.jit.script(new_cls, _rcb=rcb)
            # Make TorchScript treat Instances as already compiled, under the new class's name.
            Instances.__torch_script_class__ = True
            Instances._jit_override_qualname = torch._jit_internal._qualified_name(new_cls)
            _add_conversion_methods(new_cls)
            yield new_cls
        finally:
            for attr in ("__torch_script_class__", "_jit_override_qualname"):
                if attr in Instances.__dict__:
                    delattr(Instances, attr)
            sys.modules.pop(module_name, None)
            _clear_jit_cache()


@contextmanager
def patch_builtin_len(modules: Sequence[str] = ()) -> Iterator[None]:
    """Make ``len(x)`` call ``x.__len__()`` in a few modules while tracing: the builtin
    converts to a Python int, which the trace would record as a constant.

    Args:
        modules: names of extra modules to patch, besides detectron2's own.
    """

    def _len(obj):
        return obj.__len__()

    names = ["detectron2.modeling.roi_heads.fast_rcnn", "detectron2.modeling.roi_heads.mask_head"]
    names += list(modules)
    with ExitStack() as stack:
        for name in names:
            stack.enter_context(mock.patch(name + ".len", side_effect=_len, create=True))
        yield


def patch_nonscriptable_classes() -> None:
    """Kept for upstream compatibility: detectron2-neo's classes are scriptable as they
    are (ResNet/FPN provide ``__prepare_scriptable__`` themselves), so nothing is patched."""


@contextmanager
def freeze_training_mode(model: nn.Module) -> Iterator[None]:
    """Annotate ``training`` of every submodule class as a constant while scripting, so
    TorchScript compiles only the branch of the current mode. Reverted on exit."""
    classes = {type(m) for m in model.modules()}
    # Classes that use the older __constants__ cannot mix it with Final annotations.
    classes = {c for c in classes if not hasattr(c, "__constants__")}
    saved = {}
    for cls in classes:
        ann = cls.__dict__.get("__annotations__")
        if ann is None:
            ann = {}
            cls.__annotations__ = ann
        saved[cls] = ann.get("training", None), "training" in ann
        ann["training"] = torch.jit.Final[bool]
    try:
        yield
    finally:
        for cls, (old, had) in saved.items():
            ann = cls.__dict__["__annotations__"]
            if had:
                ann["training"] = old
            else:
                ann.pop("training", None)

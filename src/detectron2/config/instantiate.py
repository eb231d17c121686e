"""Build objects from configs that name their callable in ``_target_``."""
import collections.abc as abc
import dataclasses
import logging
from typing import Any

from detectron2.utils.registry import _convert_target_to_string, locate

__all__ = ["dump_dataclass", "instantiate"]


def dump_dataclass(obj: Any) -> dict:
    """A dataclass instance as a dict with ``_target_`` (its class) and its fields,
    recursively, so that ``instantiate`` rebuilds an equal object."""
    if not (dataclasses.is_dataclass(obj) and not isinstance(obj, type)):
        raise TypeError(f"dump_dataclass() requires an instance of a dataclass, got {type(obj)}")
    ret = {"_target_": _convert_target_to_string(type(obj))}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            v = dump_dataclass(v)
        elif isinstance(v, (list, tuple)):
            v = [dump_dataclass(x) if dataclasses.is_dataclass(x) and not isinstance(x, type) else x for x in v]
        ret[f.name] = v
    return ret


def instantiate(cfg: Any) -> Any:
    """Recursively build objects from ``cfg``.

    A mapping (dict or DictConfig) with a ``_target_`` key is replaced by the result of
    calling the target (a callable, or its dotted path as a string) with the other keys
    as keyword arguments, after instantiating those. Lists are processed element-wise; a
    DictConfig created from a dataclass becomes that dataclass; anything else is
    returned unchanged.
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, ListConfig):
        lst = [instantiate(cfg[i]) for i in range(len(cfg))]
        # allow_objects: the built objects need not be primitive types.
        return ListConfig(lst, flags={"allow_objects": True})
    if isinstance(cfg, list):
        return [instantiate(x) for x in cfg]

    if isinstance(cfg, DictConfig) and dataclasses.is_dataclass(cfg._metadata.object_type):
        # A structured config: omegaconf builds the dataclass (and nested ones) itself.
        return OmegaConf.to_object(cfg)

    if isinstance(cfg, abc.Mapping) and "_target_" in cfg:
        # Arguments first, so nested configs become objects before the call.
        kwargs = {k: instantiate(v) for k, v in cfg.items()}
        target = kwargs.pop("_target_")
        target = instantiate(target)  # a target may itself be built lazily
        if isinstance(target, str):
            target_name = target
            target = locate(target_name)
        else:
            target_name = getattr(target, "__module__", "?") + "." + getattr(target, "__qualname__", repr(target))
        if not callable(target):
            raise TypeError(f"_target_ {target_name} does not define a callable object")
        try:
            return target(**kwargs)
        except TypeError:
            logging.getLogger(__name__).error(f"Error when instantiating {target_name}!")
            raise
    return cfg

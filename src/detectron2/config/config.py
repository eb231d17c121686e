"""CfgNode (yacs/fvcore based) with versioned merging, get_cfg, the global config and
the @configurable decorator."""
import functools
import inspect
import logging
import os
from typing import Any, Callable, Dict, Optional

from fvcore.common.config import CfgNode as _CfgNode

from detectron2.utils.file_io import PathManager

__all__ = ["CfgNode", "get_cfg", "global_cfg", "set_global_cfg", "configurable"]


class CfgNode(_CfgNode):
    """fvcore's CfgNode with files opened through PathManager, and ``merge_from_file``
    that upgrades configs written for older config versions.

    Attribute-style access and ``_BASE_`` inheritance come from fvcore; note that only
    keys of the default config can be set (yacs' "new_allowed" is off).
    """

    @classmethod
    def _open_cfg(cls, filename: str):
        return PathManager.open(filename, "r")

    # Defaults to allow_unsafe=True (unlike fvcore) so that upstream configs using
    # python tags (e.g. !!python/tuple) load.
    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = True) -> None:
        """Merge a YAML file (and its ``_BASE_`` chain) into this config.

        A ``.py`` file (yacs style: it defines a dict or CfgNode named ``cfg``) is
        executed, which is only done with ``allow_unsafe=True``.

        A file whose VERSION is older than this config's (or that has no VERSION and
        looks old) is merged into a downgraded copy and the result upgraded back.
        """
        if not PathManager.isfile(cfg_filename):
            raise FileNotFoundError(f"Config file '{cfg_filename}' does not exist!")
        if os.path.splitext(cfg_filename)[1] == ".py":
            loaded_cfg = type(self)(_load_python_cfg(cfg_filename, allow_unsafe))
        else:
            loaded_cfg = type(self)(self.load_yaml_with_base(cfg_filename, allow_unsafe=allow_unsafe))

        from .defaults import _C

        latest_ver = _C.VERSION
        if self.VERSION != latest_ver:
            raise ValueError(
                f"CfgNode.merge_from_file is only allowed on a config of the latest version "
                f"v{latest_ver}, this one is v{self.VERSION}"
            )
        loaded_ver = loaded_cfg.get("VERSION", None)
        if loaded_ver is None:
            from .compat import guess_version

            loaded_ver = guess_version(loaded_cfg, cfg_filename)
        if loaded_ver > self.VERSION:
            raise ValueError(f"Cannot merge a v{loaded_ver} config into a v{self.VERSION} config.")

        if loaded_ver == self.VERSION:
            self.merge_from_other_cfg(loaded_cfg)
            return
        from .compat import downgrade_config, upgrade_config

        logging.getLogger(__name__).warning(
            f"Loading an old v{loaded_ver} config file '{cfg_filename}' by automatically "
            f"upgrading to v{self.VERSION}. Update the file to the new key names to silence this."
        )
        # Old key names only exist in the old layout: merge there, then convert back.
        old_self = downgrade_config(self, to_version=loaded_ver)
        old_self.merge_from_other_cfg(loaded_cfg)
        new_config = upgrade_config(old_self)
        self.clear()
        self.update(new_config)

    def dump(self, *args, **kwargs) -> str:
        """The config as a YAML string (arguments go to ``yaml.safe_dump``)."""
        return super().dump(*args, **kwargs)


def _load_python_cfg(filename: str, allow_unsafe: bool) -> dict:
    """The ``cfg`` dict/CfgNode defined by a python config file (runs the file)."""
    if not allow_unsafe:
        raise ValueError(
            f"Config file '{filename}' is python code; loading it executes it: pass allow_unsafe=True"
        )
    from detectron2.utils.env import _import_file

    module = _import_file("detectron2.config._python_cfg", PathManager.get_local_path(filename))
    cfg = getattr(module, "cfg", None)
    if not isinstance(cfg, dict):
        raise TypeError(f"Python config file '{filename}' must define 'cfg' as a dict or CfgNode, got {type(cfg)}")
    return cfg


global_cfg = CfgNode()
"""A process-wide config for quick experiments; set with set_global_cfg(). Code that
reads it is hard to reuse, so keep it out of library code."""


def get_cfg() -> CfgNode:
    """A fresh copy of the default config (every key with its default value)."""
    from .defaults import _C

    return _C.clone()


def set_global_cfg(cfg: CfgNode) -> None:
    """Replace the contents of ``detectron2.config.global_cfg`` with ``cfg``'s.

    ``global_cfg`` stays the same object, so modules that imported it see the change.
    """
    global_cfg.clear()
    global_cfg.update(cfg)


def configurable(init_func: Optional[Callable] = None, *, from_config: Optional[Callable] = None):
    """Let a class ``__init__`` or a function also be called with a config.

    On ``__init__`` (the class needs a ``from_config(cls, cfg, ...)`` classmethod)::

        class A:
            @configurable
            def __init__(self, a, b=2): ...

            @classmethod
            def from_config(cls, cfg):
                return {"a": cfg.A, "b": cfg.B}

        A(a=1); A(cfg); A(cfg, b=3)  # explicit arguments override from_config's

    On a function::

        @configurable(from_config=lambda cfg: {"a": cfg.A})
        def f(a, b=2): ...

        f(1); f(cfg); f(cfg, b=3)

    A call is "with a config" when its first positional argument, or its ``cfg``
    keyword argument, is a CfgNode or an omegaconf DictConfig.
    """
    if init_func is not None:
        if not (inspect.isfunction(init_func) and from_config is None and init_func.__name__ == "__init__"):
            raise TypeError(
                "Incorrect use of @configurable: use it bare on a class __init__, or as "
                "@configurable(from_config=...) on a function."
            )

        @functools.wraps(init_func)
        def wrapped_init(self, *args, **kwargs):
            try:
                from_config_func = type(self).from_config
            except AttributeError as e:
                raise AttributeError("Class with @configurable must have a 'from_config' classmethod.") from e
            if not inspect.ismethod(from_config_func):
                raise TypeError("Class with @configurable must have a 'from_config' classmethod.")
            if _called_with_cfg(*args, **kwargs):
                init_func(self, **_get_args_from_config(from_config_func, *args, **kwargs))
            else:
                init_func(self, *args, **kwargs)

        return wrapped_init

    if from_config is None:
        return configurable  # "@configurable()" is the same as "@configurable"
    if not inspect.isfunction(from_config):
        raise TypeError("from_config argument of configurable must be a function!")

    def decorator(orig_func: Callable) -> Callable:
        @functools.wraps(orig_func)
        def wrapped(*args, **kwargs):
            if _called_with_cfg(*args, **kwargs):
                return orig_func(**_get_args_from_config(from_config, *args, **kwargs))
            return orig_func(*args, **kwargs)

        wrapped.from_config = from_config  # type: ignore[attr-defined]
        return wrapped

    return decorator


def _get_args_from_config(from_config_func: Callable, *args, **kwargs) -> Dict[str, Any]:
    """Call ``from_config_func`` with the arguments it accepts; the other keyword
    arguments are added to (and override) the dict it returns."""
    signature = inspect.signature(from_config_func)
    params = list(signature.parameters.values())
    if not params or params[0].name != "cfg":
        if inspect.isfunction(from_config_func):
            name = from_config_func.__name__
        else:
            name = f"{from_config_func.__self__}.from_config"
        raise TypeError(f"{name} must take 'cfg' as the first argument!")
    takes_var_args = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
    if takes_var_args:
        ret = from_config_func(*args, **kwargs)
    else:
        supported = set(signature.parameters.keys())
        extra_kwargs = {k: kwargs.pop(k) for k in list(kwargs.keys()) if k not in supported}
        ret = from_config_func(*args, **kwargs)
        if not isinstance(ret, dict):
            raise TypeError(f"from_config must return a dict of arguments, got {type(ret)}")
        ret.update(extra_kwargs)
    return ret


def _called_with_cfg(*args, **kwargs) -> bool:
    """Whether the call passes a config (CfgNode or DictConfig) first or as ``cfg=``."""
    from omegaconf import DictConfig

    if args and isinstance(args[0], (_CfgNode, DictConfig)):
        return True
    if isinstance(kwargs.get("cfg", None), (_CfgNode, DictConfig)):
        return True
    return False

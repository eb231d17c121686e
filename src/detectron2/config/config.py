"""CfgNode (yacs/fvcore based) with versioned merging, get_cfg, the global config and
the @configurable decorator."""
import functools
import inspect
import logging
import os
from typing import Any, Callable, Dict, List, Optional

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _CfgNode

from detectron2.utils.file_io import PathManager

__all__ = ["CfgNode", "get_cfg", "global_cfg", "set_global_cfg", "configurable", "ConfigFileError", "UnsafeConfigError"]


class CfgNode(_CfgNode):
    """fvcore's CfgNode with files opened through PathManager, and ``merge_from_file``
    that upgrades configs written for older config versions.

    Attribute-style access and ``_BASE_`` inheritance come from fvcore; note that only
    keys of the default config can be set (yacs' "new_allowed" is off).
    """

    @classmethod
    def _open_cfg(cls, filename: str):
        return PathManager.open(filename, "r")

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> Dict[str, Any]:
        """The YAML file as a dict, with its ``_BASE_`` files (paths relative to it) merged
        underneath. Read with a safe loader (``!!python/tuple`` allowed, it is data); other
        python tags raise :class:`UnsafeConfigError` unless ``allow_unsafe=True``.
        """
        return _load_yaml_chain(cls, filename, allow_unsafe, chain=[])

    # Safe by default (upstream defaults to True): a python tag in a YAML file would run code.
    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file (and its ``_BASE_`` chain) into this config.

        Python tags in the YAML, and a ``.py`` file (yacs style: it defines a dict or
        CfgNode named ``cfg``), run code: they are only loaded with ``allow_unsafe=True``.

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


class ConfigFileError(ValueError, AssertionError):
    """A config file (or its ``_BASE_`` chain) is malformed: empty, not a mapping, a cycle,
    a missing base. Also an AssertionError, which fvcore raised for some of these."""


class MissingBaseConfigError(FileNotFoundError, ConfigFileError):
    """A ``_BASE_`` names a file that does not exist (a FileNotFoundError, as opening it was)."""

    __str__ = Exception.__str__  # not OSError's "[Errno ...]" form


class UnsafeConfigError(yaml.constructor.ConstructorError, ValueError):
    """A YAML config holds a python tag, which only loads with ``allow_unsafe=True``."""

    def __init__(self, message: str):
        super().__init__(problem=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _SafeConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader plus ``!!python/tuple`` and detectron2's dataclasses, which run nothing
    of the file's choosing."""


_SafeConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node))
)


def _construct_detectron2_dataclass(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    """``!!python/object:detectron2.X.Y {...}`` where Y is a dataclass of detectron2 (e.g.
    ShapeSpec, which LazyConfig.save writes): built by calling the dataclass with its
    fields, which runs no code of the file's choosing. Any other object tag is refused."""
    import dataclasses
    import importlib

    module_name, _, class_name = suffix.rpartition(".")
    refused = yaml.constructor.ConstructorError(
        None, None, f"python object tag !!python/object:{suffix} (only detectron2 dataclasses are allowed)",
        node.start_mark,
    )
    if not (module_name == "detectron2" or module_name.startswith("detectron2.")) or not class_name.isidentifier():
        raise refused
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise refused from None
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise refused
    fields = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else {}
    return cls(**fields)


_SafeConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/object:", _construct_detectron2_dataclass)


def _describe_chain(chain: List[str]) -> str:
    return " -> ".join(repr(f) for f in chain)


def load_yaml_file(stream: Any, filename: str, allow_unsafe: bool = False, chain: Optional[List[str]] = None) -> Any:
    """Parse a YAML stream safely. A python tag raises :class:`UnsafeConfigError` naming the
    file and the opt-in; with ``allow_unsafe=True`` it is loaded with a warning."""
    text = stream.read()
    try:
        return yaml.load(text, Loader=_SafeConfigLoader)
    except yaml.constructor.ConstructorError as e:
        where = _describe_chain((chain or []) + [filename])
        if not allow_unsafe:
            raise UnsafeConfigError(
                f"Config file {where} holds a tag the safe YAML loader refuses ({e.problem}{_mark(e)}); "
                "python tags run code "
                "while loading. Pass allow_unsafe=True only if you trust the file."
            ) from e
        logging.getLogger(__name__).warning(
            f"Loading config {where} with yaml.unsafe_load (allow_unsafe=True): it holds python tags, "
            "which run code. Only do this with files you trust."
        )
        return yaml.unsafe_load(text)
    except yaml.YAMLError as e:
        raise ConfigFileError(f"Config file {_describe_chain((chain or []) + [filename])} is not valid YAML: {e}") from e


def _mark(e: yaml.MarkedYAMLError) -> str:
    mark = e.problem_mark
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _merge_a_into_b(a: Dict[str, Any], b: Dict[str, Any], filename: str) -> None:
    for k, v in a.items():
        if isinstance(v, dict) and k in b:
            if not isinstance(b[k], dict):
                raise ConfigFileError(f"Config file '{filename}': key '{k}' is a dict, its base has a {type(b[k]).__name__}")
            _merge_a_into_b(v, b[k], filename)
        else:
            b[k] = v


def _resolve_base(base: Any, filename: str, chain: List[str]) -> str:
    if not isinstance(base, str) or not base:
        raise ConfigFileError(
            f"Config file {_describe_chain(chain + [filename])}: {BASE_KEY} must be a file name or a list "
            f"of them, got {base!r}"
        )
    if base.startswith("~"):
        base = os.path.expanduser(base)
    if not base.startswith(("/", "https://", "http://")):
        base = os.path.join(os.path.dirname(filename), base)  # relative to the config file
    return base


def _load_yaml_chain(cls: Any, filename: str, allow_unsafe: bool, chain: List[str]) -> Dict[str, Any]:
    """One file of a ``_BASE_`` chain; ``chain`` holds the files that (transitively) include it."""
    key = os.path.normpath(os.path.abspath(filename)) if "://" not in filename else filename
    if key in [os.path.normpath(os.path.abspath(c)) if "://" not in c else c for c in chain]:
        raise ConfigFileError(f"Config files form a {BASE_KEY} cycle: {_describe_chain(chain + [filename])}")
    if chain and not PathManager.exists(filename):
        raise MissingBaseConfigError(
            f"Config file {_describe_chain(chain)} names {BASE_KEY} '{filename}', which does not exist"
        )
    with cls._open_cfg(filename) as f:
        cfg = load_yaml_file(f, filename, allow_unsafe, chain)
    if cfg is None:
        raise ConfigFileError(f"Config file {_describe_chain(chain + [filename])} is empty: expected a mapping of keys")
    if not isinstance(cfg, dict):
        raise ConfigFileError(
            f"Config file {_describe_chain(chain + [filename])}: expected a mapping of keys at the top level, "
            f"got a {type(cfg).__name__}"
        )
    if BASE_KEY not in cfg:
        return cfg
    bases = cfg.pop(BASE_KEY)
    merged: Dict[str, Any] = {}
    for base in bases if isinstance(bases, list) else [bases]:
        base_file = _resolve_base(base, filename, chain)
        _merge_a_into_b(_load_yaml_chain(cls, base_file, allow_unsafe, chain + [filename]), merged, filename)
    _merge_a_into_b(cfg, merged, filename)
    return merged


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

"""Lazy (python/omegaconf) configs: LazyCall records a call without making it, and
LazyConfig loads, saves, overrides and prints configs made of such records."""
import ast
import builtins
import collections.abc as abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import uuid
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import is_dataclass
from types import ModuleType
from typing import Any, Callable, List, Tuple, Union

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, SCMode

from detectron2.utils.file_io import PathManager
from detectron2.utils.registry import _convert_target_to_string

__all__ = ["LazyCall", "LazyConfig"]


class LazyCall:
    """Wrap a callable so that calling it returns a config describing the call.

    ``LazyCall(f)(x=1, y=2)`` gives the DictConfig ``{"_target_": f, "x": 1, "y": 2}``;
    ``instantiate`` makes the actual call ``f(x=1, y=2)`` later, after the config has
    been edited. Only keyword arguments are allowed.
    """

    def __init__(self, target: Union[Callable, str, abc.Mapping]):
        if not (callable(target) or isinstance(target, (str, abc.Mapping))):
            raise TypeError(f"target of LazyCall must be a callable or defines a callable! Got {target}")
        self._target = target

    def __call__(self, **kwargs) -> DictConfig:
        # omegaconf would treat a dataclass type as a structured-config schema: store
        # it by name instead.
        target = _convert_target_to_string(self._target) if is_dataclass(self._target) else self._target
        kwargs["_target_"] = target
        return DictConfig(content=kwargs, flags={"allow_objects": True})


def _visit_dict_config(cfg: Any, func: Callable[[DictConfig], None]) -> None:
    """Apply ``func`` to every DictConfig inside ``cfg`` (children first)."""
    if isinstance(cfg, DictConfig):
        func(cfg)
        for v in cfg.values():
            _visit_dict_config(v, func)
    elif isinstance(cfg, ListConfig):
        for v in cfg:
            _visit_dict_config(v, func)


def _validate_py_syntax(filename: str) -> None:
    """Fail with the file name in the message if a config file is not valid python."""
    with PathManager.open(filename, "r") as f:
        content = f.read()
    try:
        ast.parse(content)
    except SyntaxError as e:
        raise SyntaxError(f"Config file {filename} has syntax error!") from e


def _cast_to_config(obj: Any) -> Any:
    # Plain dicts in python config files are turned into configs too.
    if isinstance(obj, dict):
        return DictConfig(obj, flags={"allow_objects": True})
    return obj


# Config files run as modules of this fake package, so that their relative imports
# can be told apart from everyone else's (and handled by _patch_import).
_CFG_PACKAGE_NAME = "detectron2._cfg_loader"


def _random_package_name(filename: str) -> str:
    # A unique name per load: two loads of one file never share module state.
    return _CFG_PACKAGE_NAME + str(uuid.uuid4())[:4] + "." + os.path.basename(filename)


def _load_config_module(path: str) -> ModuleType:
    """Execute a python config file as a fresh module."""
    _validate_py_syntax(path)
    spec = importlib.machinery.ModuleSpec(_random_package_name(path), None, origin=path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    with PathManager.open(path, "r") as f:
        content = f.read()
    exec(compile(content, path, "exec"), module.__dict__)
    # Public dicts become configs, whichever way the importer reaches them.
    for name, value in list(module.__dict__.items()):
        if not name.startswith("_"):
            module.__dict__[name] = _cast_to_config(value)
    return module


def _find_relative_file(original_file: str, relative_import_path: str, level: int) -> str:
    """The file that ``from <.. * level><relative_import_path> import ...`` in
    ``original_file`` refers to."""
    cur = os.path.dirname(original_file)
    for _ in range(level - 1):
        cur = os.path.dirname(cur)
    for part in relative_import_path.lstrip(".").split("."):
        if part:
            cur = os.path.join(cur, part)
    if not cur.endswith(".py"):
        cur += ".py"
    if not PathManager.isfile(cur):
        raise ImportError(
            f"Cannot import name {relative_import_path} from {original_file}: {cur} does not exist."
        )
    return cur


@contextmanager
def _patch_import():
    """Make relative imports inside config files load sibling config files.

    Config files are not in a real package, so ``from .base import model`` (or
    ``from . import base``) is resolved against the importing file's directory. Public
    dicts of files imported this way are cast to configs like top-level values.
    """
    old_import = builtins.__import__

    def new_import(name, globals=None, locals=None, fromlist=(), level=0):
        package = (globals or {}).get("__package__", "") or ""
        if level == 0 or not package.startswith(_CFG_PACKAGE_NAME):
            return old_import(name, globals, locals, fromlist=fromlist, level=level)
        importer = globals["__file__"]
        if name:
            module = _load_config_module(_find_relative_file(importer, name, level))
            for attr in fromlist or ():
                if attr not in module.__dict__:
                    raise ImportError(f"Cannot import name '{attr}' from config file {module.__file__}")
            return module
        # "from . import a, b": each name is a sibling file, returned as an attribute.
        container = ModuleType(_random_package_name(importer))
        for attr in fromlist or ():
            setattr(container, attr, _load_config_module(_find_relative_file(importer, attr, level)))
        return container

    builtins.__import__ = new_import
    try:
        yield new_import
    finally:
        builtins.__import__ = old_import


def _load_yaml_config(filename: str, allow_unsafe: bool) -> DictConfig:
    """A YAML LazyConfig file as a DictConfig; refuses python tags unless allowed."""
    from .config import ConfigFileError, load_yaml_file

    with PathManager.open(filename, "r") as f:
        obj = load_yaml_file(f, filename, allow_unsafe=allow_unsafe)
    if obj is None:
        raise ConfigFileError(f"Config file '{filename}' is empty: expected a mapping of keys")
    if not isinstance(obj, dict):
        raise ConfigFileError(
            f"Config file '{filename}': expected a mapping of keys at the top level, got a {type(obj).__name__}"
        )
    return OmegaConf.create(obj, flags={"allow_objects": True})


class LazyConfig:
    """Load, save, override and print lazy configs (python files or YAML)."""

    @staticmethod
    def load_rel(filename: str, keys: Union[None, str, Tuple[str, ...]] = None):
        """Like ``load``, with ``filename`` relative to the file of the caller."""
        # sys._getframe, not inspect.stack(): the latter reads the source of every frame.
        caller_fname = sys._getframe(1).f_code.co_filename
        if caller_fname == "<string>":
            raise ValueError("load_rel unable to find caller: use LazyConfig.load with a full path")
        caller_dir = os.path.dirname(caller_fname)
        return LazyConfig.load(os.path.join(caller_dir, filename), keys)

    @staticmethod
    def load(filename: str, keys: Union[None, str, Tuple[str, ...]] = None, *, allow_unsafe: bool = False):
        """Load a config file (.py, .yaml or .yml).

        A YAML file is read with a safe loader: python tags (which run code while loading)
        raise an error unless ``allow_unsafe=True`` (then they load, with a warning).

        Args:
            keys: None returns the whole config as a DictConfig (for a python file: its
                public dicts/configs); a name returns that value, a tuple of names a
                tuple of values.
        """
        filename = filename.replace("/./", "/")  # keeps generated module names tidy
        ext = os.path.splitext(filename)[1]
        if ext not in (".py", ".yaml", ".yml"):
            raise ValueError(f"Config file {filename} has to be a python or yaml file.")
        if ext == ".py":
            _validate_py_syntax(filename)
            with _patch_import():
                namespace = {"__file__": filename, "__package__": _random_package_name(filename)}
                with PathManager.open(filename, "r") as f:
                    content = f.read()
                # Compiled with the real file name, so errors point into the config file.
                exec(compile(content, filename, "exec"), namespace)
            ret = namespace
        else:
            ret = _load_yaml_config(filename, allow_unsafe)

        if keys is not None:
            if isinstance(keys, str):
                return _cast_to_config(ret[keys])
            return tuple(_cast_to_config(ret[a]) for a in keys)
        if ext == ".py":
            ret = DictConfig(
                {
                    name: _cast_to_config(value)
                    for name, value in ret.items()
                    if isinstance(value, (DictConfig, ListConfig, dict)) and not name.startswith("_")
                },
                flags={"allow_objects": True},
            )
        return ret

    @staticmethod
    def save(cfg, filename: str) -> None:
        """Save a config to a YAML file that ``load`` reads back.

        Callable targets are stored by their dotted name. When the config holds
        objects that YAML cannot represent loadably, the YAML is still written (for
        reading) and a cloudpickle copy is saved as ``filename + ".pkl"``.
        """
        import cloudpickle

        logger = logging.getLogger(__name__)
        if not OmegaConf.is_config(cfg):  # a plain dict/list config
            cfg = OmegaConf.create(cfg, flags={"allow_objects": True})
        try:
            cfg = deepcopy(cfg)
        except Exception:
            pass  # not copyable: save the targets as they are
        else:

            def _replace_type_by_name(x: DictConfig) -> None:
                if "_target_" in x and callable(x._target_):
                    try:
                        x._target_ = _convert_target_to_string(x._target_)
                    except AttributeError:
                        pass  # no __module__/__qualname__: keep the object

            _visit_dict_config(cfg, _replace_type_by_name)

        save_pkl = False
        try:
            # INSTANTIATE keeps dataclasses (e.g. a ShapeSpec inside a LazyCall) as
            # objects, which YAML writes with their type, so load + instantiate rebuild
            # them; DICT would erase the type. Interpolations stay unresolved.
            container = OmegaConf.to_container(cfg, resolve=False, structured_config_mode=SCMode.INSTANTIATE)
            dumped = yaml.dump(container, default_flow_style=None, allow_unicode=True, width=9999)
            with PathManager.open(filename, "w") as f:
                f.write(dumped)
            try:
                from .config import _SafeConfigLoader

                yaml.load(dumped, Loader=_SafeConfigLoader)  # what load() reads by default
            except yaml.constructor.ConstructorError:
                logger.warning(
                    f"The config contains python objects: {filename} loads only with "
                    "LazyConfig.load(..., allow_unsafe=True); a .pkl copy is saved as well."
                )
                save_pkl = True
            except Exception:
                logger.warning(
                    f"The config contains objects that cannot serialize to a valid yaml. "
                    f"{filename} is human-readable but cannot be loaded."
                )
                save_pkl = True
        except Exception:
            logger.exception("Unable to serialize the config to yaml. Error:")
            save_pkl = True

        if save_pkl:
            new_filename = filename + ".pkl"
            try:
                with PathManager.open(new_filename, "wb") as f:
                    cloudpickle.dump(cfg, f)
                logger.warning(f"Config is saved using cloudpickle at {new_filename}.")
            except Exception:
                logger.exception(f"Unable to save the config with cloudpickle at {new_filename}.")

    @staticmethod
    def apply_overrides(cfg, overrides: List[str]):
        """Apply command-line style overrides, e.g. ``["train.max_iter=10", "~model.x"]``,
        in place, and return ``cfg``.

        Values are parsed with hydra's override grammar (numbers, lists, quoted strings,
        null...). ``~key`` deletes a key. A dotted key may not descend through a value
        that is not a config.
        """
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        for o in parser.parse_overrides(list(overrides)):
            key = o.key_or_group
            if o.is_delete():
                _delete_key(cfg, key)
            else:
                _safe_update(cfg, key, o.value())
        return cfg

    @staticmethod
    def to_py(cfg, prefix: str = "cfg.") -> str:
        """Python-like source text of a config, one ``<prefix>key = value`` line per
        top-level entry, with LazyCall targets written as calls, formatted with black
        when black is installed. For humans to read (e.g. to compare two configs); not
        meant to be executed.
        """
        cfg = deepcopy(cfg)
        if isinstance(cfg, (DictConfig, ListConfig)):
            cfg = OmegaConf.to_container(cfg, resolve=True)
        return _format_with_black(_to_py_str(cfg, prefix=prefix))


def _format_with_black(code: str) -> str:
    """``code`` formatted by black when it is installed (as upstream's to_py does), so
    the text matches upstream's; unchanged without black or if black rejects it."""
    try:
        import black
    except ImportError:
        return code
    try:
        return black.format_str(code, mode=black.Mode())
    except black.InvalidInput:
        return code


def _safe_update(cfg, key: str, value) -> None:
    parts = key.split(".")
    for idx in range(1, len(parts)):
        prefix = ".".join(parts[:idx])
        v = OmegaConf.select(cfg, prefix, default=None)
        if v is None:
            break  # the rest is created
        if not OmegaConf.is_config(v):
            raise KeyError(f"Trying to update key {key}, but {prefix} is not a config, but has type {type(v)}.")
    OmegaConf.update(cfg, key, value, merge=True)


def _delete_key(cfg, key: str) -> None:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not OmegaConf.is_config(parent) or leaf not in parent:
        raise KeyError(f"Cannot delete key {key}: it does not exist in the config.")
    del parent[leaf]


def _to_py_str(obj: Any, prefix: str = "", top_level: bool = True) -> str:
    """Render a (plain container) config as python-like text (see LazyConfig.to_py)."""
    if isinstance(obj, abc.Mapping) and "_target_" in obj:
        obj = dict(obj)
        target = obj.pop("_target_")
        if not isinstance(target, str):
            target = _convert_target_to_string(target)
        args = ", ".join(f"{k}={_to_py_str(v, top_level=False)}" for k, v in sorted(obj.items()))
        return f"{target}({args})"
    if isinstance(obj, abc.Mapping) and top_level:
        # Plain dicts at the top are flattened into dotted assignments.
        lines = []
        for k, v in sorted(obj.items()):
            if isinstance(v, abc.Mapping) and "_target_" not in v:
                sub = _to_py_str(v, prefix=f"{prefix}{k}.", top_level=True)
                lines.append(sub if sub else f"{prefix}{k} = {{}}")
            else:
                lines.append(f"{prefix}{k} = {_to_py_str(v, top_level=False)}")
        return "\n".join(line for line in lines if line)
    if isinstance(obj, abc.Mapping):
        items = ", ".join(f"{k!r}: {_to_py_str(v, top_level=False)}" for k, v in sorted(obj.items()))
        return "{" + items + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(_to_py_str(x, top_level=False) for x in obj) + "]"
    if isinstance(obj, tuple):
        inner = ", ".join(_to_py_str(x, top_level=False) for x in obj)
        return "(" + inner + ("," if len(obj) == 1 else "") + ")"
    return repr(obj)

"""Name -> object registries (fvcore's Registry) and dotted-path object lookup."""
import builtins
import importlib
from typing import Any

from fvcore.common.registry import Registry  # noqa: F401  (re-exported: detectron2.utils.registry.Registry)

__all__ = ["Registry", "locate"]


def _import_longest_prefix(parts):
    """Import the longest importable module named by a prefix of ``parts``.

    Returns (module, number of parts consumed), or (None, 0) when no prefix is a module.
    An ImportError raised *inside* an existing module is not swallowed: it is a real bug.
    """
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        try:
            return importlib.import_module(name), n
        except ModuleNotFoundError as e:
            missing = e.name or ""
            # Only "this very prefix (or a parent of it) does not exist" means: try shorter.
            if missing == name or name.startswith(missing + "."):
                continue
            raise
    return None, 0


def locate(name: str) -> Any:
    """Return the object at the dotted path ``name``, e.g. "torch.nn.Conv2d" or "module.Class.method".

    Raises ImportError when nothing is found at that path.
    """
    if not isinstance(name, str) or not name:
        raise ImportError(f"locate() expects a non-empty dotted path string, got {name!r}")
    parts = name.split(".")
    obj, used = _import_longest_prefix(parts)
    if obj is None:
        if not hasattr(builtins, parts[0]):
            raise ImportError(f"Cannot locate '{name}': no module named '{parts[0]}'")
        obj, used = getattr(builtins, parts[0]), 1
    for i in range(used, len(parts)):
        try:
            obj = getattr(obj, parts[i])
        except AttributeError as e:
            owner = ".".join(parts[:i])
            raise ImportError(f"Cannot locate '{name}': '{owner}' has no attribute '{parts[i]}'") from e
    return obj


def _convert_target_to_string(t: Any) -> str:
    """The shortest dotted path under which ``locate`` finds ``t`` itself.

    "pkg.sub._impl.Class" becomes "pkg.sub.Class" when the package re-exports it, which
    keeps serialized configs short and independent of where the class is implemented.
    """
    module, qualname = t.__module__, t.__qualname__
    module_parts = module.split(".")
    for k in range(1, len(module_parts)):
        candidate = ".".join(module_parts[:k]) + "." + qualname
        try:
            if locate(candidate) is t:
                return candidate
        except Exception:  # a shorter path that fails to import is simply not a candidate
            continue
    return f"{module}.{qualname}"

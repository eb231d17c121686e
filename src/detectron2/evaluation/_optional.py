"""Imports of the third-party evaluation toolkits that detectron2 does not depend on."""
import importlib
import types
from typing import Any


def require(module: str, user: str, pip_name: str) -> types.ModuleType:
    """Import ``module`` for ``user``; a missing package raises an ImportError that says
    which evaluator needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{user} needs the '{module.split('.')[0]}' package, which is not installed "
            f"({e}). Install it with `pip install {pip_name}`."
        ) from e


def metadata_of(dataset_name: str) -> Any:
    """``MetadataCatalog.get(dataset_name)``; imported here, when an evaluator is built."""
    from detectron2.data import MetadataCatalog

    return MetadataCatalog.get(dataset_name)

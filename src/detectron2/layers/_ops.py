"""One place that loads the compiled extension ``detectron2._C``.

Importing detectron2.layers never fails because of _C: the extension is loaded the
first time an op needs it, and a failure names the loader's error and the way to a fix.
"""
import importlib
import types

import torch

_C_MODULE = None


def load_C() -> types.ModuleType:
    """Return ``detectron2._C``, which registers ``torch.ops.detectron2`` on import."""
    global _C_MODULE
    if _C_MODULE is None:
        try:
            _C_MODULE = importlib.import_module("detectron2._C")
        except ImportError as e:
            raise ImportError(
                f"detectron2's compiled ops (detectron2._C) cannot be loaded: {e}. "
                "Run `python -m detectron2.doctor` to find the cause and the fix."
            ) from e
    return _C_MODULE


def try_load_C() -> bool:
    """Load _C if it can be loaded, without raising: lets TorchScript resolve
    ``torch.ops.detectron2.*`` in scripted functions, while importing detectron2.layers
    still works without _C (the first call then raises load_C's clear error)."""
    try:
        load_C()
    except ImportError:
        return False
    return True


def ops():
    """The ``torch.ops.detectron2`` namespace, after making sure _C is loaded."""
    load_C()
    return torch.ops.detectron2

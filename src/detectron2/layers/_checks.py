"""Error types for bad arguments, shared by layers, structures, data and evaluation.

Upstream Detectron2 checks many inputs with ``assert``; code may catch AssertionError.
The errors here are ValueError / TypeError (what the input is) and also the type upstream
raised, so existing handlers keep working.
"""
from typing import Any

from ._errors import ValueAssertionError

__all__ = ["BadInputError", "BadTypeError", "describe"]


# One class for "right type, bad value or shape": the same as _errors.ValueAssertionError.
BadInputError = ValueAssertionError


class BadTypeError(TypeError, AttributeError):
    """An argument has the wrong type (upstream failed with AttributeError on it)."""


def describe(x: Any) -> str:
    """A short description of a value for error messages: type, and shape/dtype if any."""
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {getattr(x, 'dtype', '?')}"
    if isinstance(x, (list, tuple)):
        return f"{type(x).__name__} of length {len(x)}"
    return type(x).__name__

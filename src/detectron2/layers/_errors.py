"""Exception classes that keep upstream's observable exception types.

Upstream Detectron2 validates many arguments with ``assert`` (AssertionError) or lets a
dict lookup fail (KeyError); user code and test suites catch those types. We raise
clear, message-carrying errors instead, and derive them from both the natural type and
upstream's, so ``except AssertionError`` and ``except ValueError`` both keep working.
"""

__all__ = ["ValueAssertionError", "TypeAssertionError", "IndexAssertionError", "KeyAssertionError", "ValueKeyError", "ValueTypeError"]


class ValueAssertionError(ValueError, AssertionError):
    """A bad argument value where upstream raises AssertionError."""


class TypeAssertionError(TypeError, AssertionError):
    """An argument of the wrong type where upstream raises AssertionError."""


class IndexAssertionError(IndexError, AssertionError):
    """An index that selects no valid sub-structure, where upstream asserts."""


class KeyAssertionError(KeyError, AssertionError):
    """A duplicate or missing key where upstream asserts."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; show it as written.
        return Exception.__str__(self)


class ValueTypeError(ValueError, TypeError):
    """An argument of the wrong type where upstream raises ValueError."""


class ValueKeyError(ValueError, KeyError):
    """A bad key or choice where upstream raises KeyError (a failed dict lookup)."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; show it as written.
        return ValueError.__str__(self)

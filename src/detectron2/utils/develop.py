"""Placeholders for names whose optional dependency is missing: they fail only when used."""
from typing import Callable, Sequence, Union

__all__ = ["create_dummy_class", "create_dummy_func"]


def _missing_dependency_message(name: str, dependency: Union[str, Sequence[str]], message: str) -> str:
    if isinstance(dependency, (list, tuple)):
        dependency = ",".join(dependency)
    err = f"Cannot import '{dependency}', therefore '{name}' is not available."
    return err + " " + message if message else err


def create_dummy_class(klass: str, dependency: Union[str, Sequence[str]], message: str = "") -> type:
    """A class named after ``klass`` that raises ImportError when instantiated or when any
    class attribute is accessed, explaining that ``dependency`` is missing."""
    err = _missing_dependency_message(klass, dependency, message)

    class _DummyMetaClass(type):
        def __getattr__(cls, name):  # only called for attributes that do not exist
            raise ImportError(err)

    class _Dummy(object, metaclass=_DummyMetaClass):
        def __init__(self, *args, **kwargs):
            raise ImportError(err)

    _Dummy.__name__ = _Dummy.__qualname__ = klass
    return _Dummy


def create_dummy_func(func: str, dependency: Union[str, Sequence[str]], message: str = "") -> Callable:
    """A function named after ``func`` that raises ImportError about ``dependency`` when called."""
    err = _missing_dependency_message(func, dependency, message)

    def _dummy(*args, **kwargs):
        raise ImportError(err)

    _dummy.__name__ = _dummy.__qualname__ = func
    return _dummy

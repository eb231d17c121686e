"""Pickling helpers for objects that plain pickle refuses (lambdas, closures, local classes)."""
from typing import Any

import cloudpickle

__all__ = ["PicklableWrapper"]


class PicklableWrapper:
    """Wrap any object so that it pickles with cloudpickle, e.g. to pass a lambda to a
    multiprocessing data loader. Calls and attribute access go to the wrapped object;
    unpickling gives back the wrapped object itself (not the wrapper).
    """

    def __init__(self, obj: Any):
        while isinstance(obj, PicklableWrapper):  # never nest wrappers
            obj = obj._obj
        self._obj = obj

    def __reduce__(self):
        return cloudpickle.loads, (cloudpickle.dumps(self._obj),)

    def __call__(self, *args, **kwargs):
        return self._obj(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        # Only reached for names not found on the wrapper; "_obj" missing means a
        # half-built instance, which must not recurse.
        if attr == "_obj":
            raise AttributeError(attr)
        return getattr(self._obj, attr)

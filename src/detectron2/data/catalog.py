"""Global registries of datasets (name -> loader function) and their metadata."""
import copy
import logging
import types
from collections import UserDict
from typing import Any, Callable, Dict, List

from detectron2.layers._errors import ValueAssertionError
from detectron2.utils.logger import log_first_n

__all__ = ["DatasetCatalog", "MetadataCatalog", "Metadata"]


class _DatasetCatalog(UserDict):
    """Maps a dataset name to a zero-argument function returning its ``list[dict]``.

    Registering stores the function only; nothing is read until :meth:`get` calls it,
    so hundreds of datasets can be registered at import time for free.
    """

    def register(self, name: str, func: Callable[[], Any]) -> None:
        if not callable(func):
            raise AssertionError(
                f"DatasetCatalog.register('{name}', func): func must be a callable returning the "
                f"dataset dicts, got {type(func).__name__}"
            )
        if name in self:
            raise AssertionError(f"Dataset '{name}' is already registered!")
        self[name] = func

    def get(self, name: str) -> Any:
        """Call the registered function of ``name`` and return its dataset dicts."""
        try:
            func = self[name]
        except KeyError as e:
            raise KeyError(
                f"Dataset '{name}' is not registered! Available datasets are: {', '.join(self.keys())}"
            ) from e
        return func()

    def list(self) -> List[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()
DatasetCatalog.__doc__ = _DatasetCatalog.__doc__


class Metadata(types.SimpleNamespace):
    """Attributes of one dataset (class names, colours, keypoint names, evaluator type ...).

    An attribute can be set once; setting it again to a different value is an error, so
    two pieces of code cannot silently disagree about, e.g., the class names. Reading a
    missing attribute raises AttributeError listing what exists.
    """

    name: str = "N/A"

    # Old attribute names, still accepted with a warning.
    _RENAMED: Dict[str, str] = {
        "class_names": "thing_classes",
        "dataset_id_to_contiguous_id": "thing_dataset_id_to_contiguous_id",
        "stuff_class_names": "stuff_classes",
    }

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails.
        if key in self._RENAMED:
            self._warn_renamed(key)
            return getattr(self, self._RENAMED[key])
        if len(self.__dict__) > 1:
            raise AttributeError(
                f"Attribute '{key}' does not exist in the metadata of dataset '{self.name}'. "
                f"Available keys are {str(self.__dict__.keys())}."
            )
        raise AttributeError(f"Attribute '{key}' does not exist in the metadata of dataset '{self.name}': metadata is empty.")

    def __setattr__(self, key: str, val: Any) -> None:
        if key in self._RENAMED:
            self._warn_renamed(key)
            setattr(self, self._RENAMED[key], val)
            return
        try:
            oldval = getattr(self, key)
        except AttributeError:
            super().__setattr__(key, val)
            return
        if not _same_value(oldval, val):
            raise AssertionError(
                f"Attribute '{key}' in the metadata of '{self.name}' cannot be set to a different "
                f"value!\n{oldval} != {val}"
            )

    def _warn_renamed(self, key: str) -> None:
        log_first_n(
            logging.WARNING,
            f"Metadata '{key}' was renamed to '{self._RENAMED[key]}'!",
            n=10,
            name=__name__,
        )

    def as_dict(self) -> Dict[str, Any]:
        """A shallow copy of all attributes."""
        return copy.copy(self.__dict__)

    def set(self, **kwargs: Any) -> "Metadata":
        """Set several attributes at once (each with set-once semantics); returns self."""
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """The attribute ``key``, or ``default`` when it does not exist."""
        try:
            return getattr(self, key)
        except AttributeError:
            return default


def _same_value(a: Any, b: Any) -> bool:
    # `==` on numpy arrays / tensors is elementwise; compare as plain data where needed.
    try:
        return bool(a == b)
    except (ValueError, RuntimeError):
        try:
            return type(a) is type(b) and a.shape == b.shape and bool((a == b).all())
        except Exception:  # incomparable values are different
            return False


class _MetadataCatalog(UserDict):
    """Maps a dataset name to its :class:`Metadata`; :meth:`get` creates it on first use."""

    def get(self, name: str) -> Metadata:
        if not name:
            raise ValueAssertionError("MetadataCatalog.get(name): name must be a non-empty string")
        r = super().get(name, None)
        if r is None:
            r = self[name] = Metadata(name=name)
        return r

    def list(self) -> List[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()
MetadataCatalog.__doc__ = _MetadataCatalog.__doc__

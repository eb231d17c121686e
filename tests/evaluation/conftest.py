"""Fixtures of the evaluation tests: dataset registration through detectron2.data's
catalogs. Until detectron2.data exists in this tree, a minimal stand-in with upstream's
interface (MetadataCatalog.get/remove, DatasetCatalog.register/get/remove) takes its
place, so the evaluators can be tested on their own."""
import itertools
import sys
import types
from typing import Any, Callable, Dict

import pytest


def _install_catalog_stand_in() -> None:
    class Metadata(types.SimpleNamespace):
        def get(self, key: str, default: Any = None) -> Any:
            return getattr(self, key, default)

        def set(self, **kwargs: Any) -> "Metadata":
            for k, v in kwargs.items():
                setattr(self, k, v)
            return self

    class _MetadataCatalog(dict):
        def get(self, name: str) -> Metadata:  # type: ignore[override]
            return self.setdefault(name, Metadata(name=name))

        def remove(self, name: str) -> None:
            self.pop(name, None)

    class _DatasetCatalog(dict):
        def register(self, name: str, func: Callable) -> None:
            self[name] = func

        def get(self, name: str):  # type: ignore[override]
            return self[name]()

        def remove(self, name: str) -> None:
            self.pop(name, None)

    module = types.ModuleType("detectron2.data")
    module.MetadataCatalog = _MetadataCatalog()
    module.DatasetCatalog = _DatasetCatalog()
    sys.modules["detectron2.data"] = module


try:
    from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: F401
except ImportError:
    _install_catalog_stand_in()

_names = itertools.count()


@pytest.fixture
def register_dataset():
    """``register_dataset(records=None, **metadata) -> name``: a fresh dataset name with
    the given metadata (and dataset records), removed after the test."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    registered = []

    def register(records=None, **metadata: Dict[str, Any]) -> str:
        name = f"evaluation_test_{next(_names)}"
        if records is not None:
            DatasetCatalog.register(name, lambda: records)
        MetadataCatalog.get(name).set(**metadata)
        registered.append(name)
        return name

    yield register
    for name in registered:
        MetadataCatalog.remove(name)
        if name in DatasetCatalog:
            DatasetCatalog.remove(name)

"""Fixtures of the evaluation tests: datasets registered in detectron2.data's catalogs
for one test."""
import itertools
from typing import Any, Dict

import pytest

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

import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog


@pytest.fixture
def name(request):
    """A dataset name unique to the test, removed from both catalogs afterwards."""
    n = f"{request.module.__name__.rpartition('.')[2]}_{request.node.name}"
    yield n
    for catalog in (DatasetCatalog, MetadataCatalog):
        if n in catalog:
            catalog.remove(n)

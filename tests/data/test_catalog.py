import logging

import numpy as np
import pytest

from detectron2.data import DatasetCatalog, Metadata, MetadataCatalog


@pytest.fixture
def name(request):
    n = "test_catalog_" + request.node.name
    yield n
    for catalog in (DatasetCatalog, MetadataCatalog):
        if n in catalog:
            catalog.remove(n)


def test_register_get_list_remove(name):
    calls = []
    DatasetCatalog.register(name, lambda: calls.append(1) or [{"x": 1}])
    assert calls == []  # registration is lazy
    assert name in DatasetCatalog.list()
    assert DatasetCatalog.get(name) == [{"x": 1}]
    assert calls == [1]
    DatasetCatalog.remove(name)
    assert name not in DatasetCatalog.list()


def test_register_twice_and_not_callable(name):
    DatasetCatalog.register(name, lambda: [])
    with pytest.raises(AssertionError, match="already registered"):
        DatasetCatalog.register(name, lambda: [])
    with pytest.raises(AssertionError, match="callable"):
        DatasetCatalog.register(name + "_x", [1, 2])


def test_get_unregistered_lists_available(name):
    DatasetCatalog.register(name, lambda: [])
    with pytest.raises(KeyError, match="not registered") as e:
        DatasetCatalog.get("no_such_dataset_xyz")
    assert name in str(e.value) and "no_such_dataset_xyz" in str(e.value)


def test_builtin_datasets_registered():
    names = DatasetCatalog.list()
    for n in ["coco_2017_train", "keypoints_coco_2017_val", "coco_2017_val_panoptic", "coco_2017_val_panoptic_separated",
              "coco_2017_val_panoptic_stuffonly", "lvis_v1_val", "voc_2007_test", "cityscapes_fine_instance_seg_train"]:
        assert n in names
    meta = MetadataCatalog.get("coco_2017_train")
    assert len(meta.thing_classes) == 80 and meta.evaluator_type == "coco"
    assert meta.json_file.endswith("coco/annotations/instances_train2017.json")
    assert MetadataCatalog.get("voc_2007_test").evaluator_type == "pascal_voc"


def test_metadata_set_once(name):
    meta = MetadataCatalog.get(name)
    assert meta.name == name
    meta.thing_classes = ["a", "b"]
    meta.thing_classes = ["a", "b"]  # same value: fine
    with pytest.raises(AssertionError, match="thing_classes.*different value"):
        meta.thing_classes = ["a", "c"]
    meta.set(arr=np.arange(3))
    meta.set(arr=np.arange(3))
    with pytest.raises(AssertionError):
        meta.set(arr=np.arange(4))
    assert MetadataCatalog.get(name) is meta


def test_metadata_missing_and_get(name):
    meta = MetadataCatalog.get(name)
    with pytest.raises(AttributeError, match="metadata is empty"):
        meta.foo
    meta.set(a=1)
    with pytest.raises(AttributeError, match="Available keys"):
        meta.foo
    assert meta.get("foo", 3) == 3 and meta.get("a") == 1
    assert meta.as_dict() == {"name": name, "a": 1}
    with pytest.raises(ValueError):
        MetadataCatalog.get("")


def test_metadata_renamed_attribute(name, caplog):
    meta = Metadata(name=name)
    with caplog.at_level(logging.WARNING):
        meta.class_names = ["x"]
    assert meta.thing_classes == ["x"]
    assert meta.class_names == ["x"]
    assert "renamed" in caplog.text

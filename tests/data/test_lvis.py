import json

import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import get_lvis_instances_meta, load_lvis_json, register_lvis_instances
from detectron2.structures import BoxMode

SQUARE = [1.0, 1.0, 9.0, 1.0, 9.0, 9.0, 1.0, 9.0]


def _lvis_json(tmp_path, annotations=None):
    d = {
        "images": [
            {"id": 9, "height": 20, "width": 30, "coco_url": "http://images.cocodataset.org/val2017/000000000009.jpg",
             "not_exhaustive_category_ids": [2], "neg_category_ids": [3]},
            {"id": 4, "height": 20, "width": 30, "coco_url": "http://images.cocodataset.org/train2017/000000000004.jpg"},
        ],
        "categories": [
            {"id": 2, "name": "banana", "synonyms": ["banana", "banana_fruit"], "image_count": 1},
            {"id": 1, "name": "aerosol_can", "synonyms": ["aerosol_can", "spray_can"], "image_count": 5},
            {"id": 3, "name": "zebra", "synonyms": ["zebra"], "image_count": 2},
        ],
        "annotations": annotations
        if annotations is not None
        else [
            {"id": 1, "image_id": 9, "category_id": 1, "bbox": [1, 1, 8, 8], "segmentation": [SQUARE], "area": 64, "score": 0.9},
            {"id": 2, "image_id": 9, "category_id": 3, "bbox": [1, 1, 8, 8], "segmentation": [SQUARE], "area": 64, "score": 0.2},
            {"id": 3, "image_id": 4, "category_id": 2, "bbox": [1, 1, 8, 8], "segmentation": [SQUARE], "area": 64, "score": 0.1},
        ],
    }
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(d))
    return str(path)


def test_load_lvis_json(tmp_path):
    name = "test_lvis_v1_load"
    try:
        dicts = load_lvis_json(_lvis_json(tmp_path), "/coco", name, extra_annotation_keys=["score"])
        assert [d["image_id"] for d in dicts] == [4, 9]
        a, b = dicts
        assert a["file_name"] == "/coco/train2017/000000000004.jpg"
        assert b["file_name"] == "/coco/val2017/000000000009.jpg"
        assert a["not_exhaustive_category_ids"] == [] and b["neg_category_ids"] == [3]
        assert b["not_exhaustive_category_ids"] == [2]
        assert [x["category_id"] for x in b["annotations"]] == [0, 2]  # 1-based -> 0-based
        assert b["annotations"][0]["bbox_mode"] == BoxMode.XYWH_ABS and b["annotations"][0]["score"] == 0.9
        assert b["annotations"][0]["segmentation"] == [SQUARE]
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["aerosol_can", "banana", "zebra"]  # first synonym, by id
        assert [c["image_count"] for c in meta.class_image_count] == [5, 1, 2]
    finally:
        MetadataCatalog.remove(name)


def test_invalid_polygon_and_duplicate_ids(tmp_path):
    bad = [{"id": 1, "image_id": 9, "category_id": 1, "bbox": [1, 1, 8, 8], "segmentation": [[1, 2, 3, 4]], "area": 1}]
    with pytest.raises(ValueError, match="invalid polygon"):
        load_lvis_json(_lvis_json(tmp_path, bad), "")
    dup = [dict(bad[0], segmentation=[SQUARE]), dict(bad[0], segmentation=[SQUARE])]
    with pytest.raises(ValueError, match="not unique"):
        load_lvis_json(_lvis_json(tmp_path, dup), "")


def test_register_and_meta(tmp_path):
    name = "test_lvis_v1_register"
    json_file = str(tmp_path / "lvis.json")
    register_lvis_instances(name, {}, json_file, "/coco/")  # lazy: the json does not exist yet
    try:
        assert MetadataCatalog.get(name).evaluator_type == "lvis"
        with pytest.raises(ValueError, match="json"):
            get_lvis_instances_meta(name)
        _lvis_json(tmp_path)
        assert get_lvis_instances_meta(name)["thing_classes"] == ["aerosol_can", "banana", "zebra"]
        assert len(DatasetCatalog.get(name)) == 2
        assert MetadataCatalog.get(name).thing_classes == ["aerosol_can", "banana", "zebra"]
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_cocofied_uses_coco_ids(tmp_path):
    anns = [{"id": 1, "image_id": 9, "category_id": 90, "bbox": [1, 1, 8, 8], "segmentation": [SQUARE], "area": 64}]
    name = "test_lvis_v0.5_val_cocofied"
    try:
        dicts = load_lvis_json(_lvis_json(tmp_path, anns), "/coco", name)
        assert dicts[1]["annotations"][0]["category_id"] == 79  # toothbrush, the last COCO class
        assert len(MetadataCatalog.get(name).thing_classes) == 80
    finally:
        MetadataCatalog.remove(name)
    assert len(get_lvis_instances_meta("lvis_v0.5_train_cocofied")["thing_classes"]) == 80

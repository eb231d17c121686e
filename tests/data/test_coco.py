import copy
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import convert_to_coco_json, load_coco_json, load_sem_seg, register_coco_instances
from detectron2.data.datasets.coco import convert_to_coco_dict
from detectron2.structures import BoxMode

SQUARE = [10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]


def _coco_json(tmp_path, **overrides):
    mask = np.zeros((40, 50), dtype=np.uint8, order="F")
    mask[5:15, 20:40] = 1  # area 200
    rle_uncompressed = {"size": [40, 50], "counts": _uncompressed_counts(mask)}
    d = {
        "images": [
            {"id": 7, "file_name": "b.jpg", "height": 40, "width": 50},
            {"id": 3, "file_name": "a.jpg", "height": 40, "width": 50},
        ],
        "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 3, "category_id": 5, "bbox": [10, 10, 20, 20], "iscrowd": 0,
             "segmentation": [SQUARE], "area": 400, "keypoints": [12, 13, 2, 0, 0, 0], "score": 0.5},
            {"id": 2, "image_id": 3, "category_id": 2, "bbox": [20, 5, 20, 10], "iscrowd": 1,
             "segmentation": rle_uncompressed, "area": 200},
            # a polygon of 2 points: the instance is dropped
            {"id": 3, "image_id": 7, "category_id": 2, "bbox": [0, 0, 4, 4], "iscrowd": 0,
             "segmentation": [[0, 0, 4, 4]], "area": 8},
            # one valid and one invalid polygon: the invalid one is dropped
            {"id": 4, "image_id": 7, "category_id": 5, "bbox": [10, 10, 20, 20], "iscrowd": 0,
             "segmentation": [SQUARE, [1, 2, 3]], "area": 400},
            {"id": 5, "image_id": 7, "category_id": 5, "bbox": [1, 1, 2, 2], "iscrowd": 0, "area": 4},
        ],
    }
    d.update(overrides)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(d))
    return str(path)


def _uncompressed_counts(mask):
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return counts


@pytest.fixture
def name(request):
    n = "test_coco_" + request.node.name
    yield n
    for catalog in (DatasetCatalog, MetadataCatalog):
        if n in catalog:
            catalog.remove(n)


def test_load_coco_json_fields(tmp_path, name):
    dicts = load_coco_json(_coco_json(tmp_path), "/imgs", name, extra_annotation_keys=["score"])
    assert [d["image_id"] for d in dicts] == [3, 7]  # sorted by id
    a = dicts[0]
    assert a["file_name"] == os.path.join("/imgs", "a.jpg") and (a["height"], a["width"]) == (40, 50)
    ann0, ann1 = a["annotations"]
    assert ann0["bbox"] == [10, 10, 20, 20] and ann0["bbox_mode"] == BoxMode.XYWH_ABS
    assert ann0["category_id"] == 1  # json ids sorted: 2 -> 0, 5 -> 1
    assert ann0["segmentation"] == [SQUARE] and ann0["score"] == 0.5
    assert ann0["keypoints"] == [12.5, 13.5, 2, 0.5, 0.5, 0]  # pixel indices -> continuous
    assert ann1["iscrowd"] == 1 and ann1["category_id"] == 0
    assert isinstance(ann1["segmentation"]["counts"], bytes)  # uncompressed RLE -> compressed
    assert mask_util.area(ann1["segmentation"]) == 200
    b = dicts[1]["annotations"]
    assert len(b) == 2  # the 2-point polygon instance is gone
    assert b[0]["segmentation"] == [SQUARE]
    assert "segmentation" not in b[1]
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["dog", "cat"]
    assert meta.thing_dataset_id_to_contiguous_id == {2: 0, 5: 1}


def test_load_coco_json_without_name_keeps_ids(tmp_path):
    dicts = load_coco_json(_coco_json(tmp_path), "/imgs")
    assert dicts[0]["annotations"][0]["category_id"] == 5
    assert "score" not in dicts[0]["annotations"][0]


def test_load_coco_json_errors(tmp_path, name):
    base = json.loads(open(_coco_json(tmp_path)).read())

    def broken(i, key, value):
        anns = copy.deepcopy(base["annotations"])
        anns[i][key] = value
        return _coco_json(tmp_path, annotations=anns)

    with pytest.raises(ValueError, match="not unique"):
        load_coco_json(broken(1, "id", 1), "")
    with pytest.raises(ValueError, match="empty 'bbox'"):
        load_coco_json(broken(0, "bbox", []), "")
    with pytest.raises(KeyError, match="category_id=99"):
        load_coco_json(broken(0, "category_id", 99), "", name)
    with pytest.raises(ValueError, match="ignore"):
        load_coco_json(broken(0, "ignore", 1), "")


def test_register_is_lazy_and_roundtrip(tmp_path, name):
    json_file = str(tmp_path / "later.json")
    register_coco_instances(name, {"extra": 1}, json_file, str(tmp_path))  # file does not exist yet
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "coco" and meta.json_file == json_file and meta.extra == 1
    os.rename(_coco_json(tmp_path), json_file)
    dicts = DatasetCatalog.get(name)
    assert len(dicts) == 2

    coco = convert_to_coco_dict(name)
    assert [c["id"] for c in coco["categories"]] == [2, 5]
    assert [im["id"] for im in coco["images"]] == [3, 7]
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3, 4]
    assert anns[0]["category_id"] == 5 and anns[0]["bbox"] == [10, 10, 20, 20]
    assert anns[0]["area"] == pytest.approx(400.0)  # polygon area
    assert anns[0]["keypoints"] == [12.0, 13.0, 2, 0.0, 0.0, 0] and anns[0]["num_keypoints"] == 1
    assert anns[1]["area"] == pytest.approx(200.0) and isinstance(anns[1]["segmentation"]["counts"], str)
    assert anns[1]["iscrowd"] == 1
    assert anns[3]["area"] == pytest.approx(4.0)  # no mask: box area

    out = tmp_path / "out" / "coco.json"
    convert_to_coco_json(name, str(out))
    reloaded = load_coco_json(str(out), "")
    assert len(reloaded) == 2 and not (tmp_path / "out" / "coco.json.tmp").exists()
    # cached: an existing file is kept unless allow_cached=False
    out.write_text("{}")
    convert_to_coco_json(name, str(out))
    assert out.read_text() == "{}"
    convert_to_coco_json(name, str(out), allow_cached=False)
    assert len(json.loads(out.read_text())["images"]) == 2


def test_convert_rotated_and_xyxy_boxes(name):
    dicts = [{"file_name": "x.jpg", "height": 10, "width": 10, "image_id": 1, "annotations": [
        {"bbox": [1, 2, 5, 8], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0},
        {"bbox": np.array([5.0, 5.0, 4.0, 2.0, 30.0]), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": 0},
    ]}]
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).thing_classes = ["a"]
    anns = convert_to_coco_dict(name)["annotations"]
    assert anns[0]["bbox"] == [1, 2, 4, 6] and anns[0]["area"] == pytest.approx(24.0)
    assert anns[1]["bbox"] == [5.0, 5.0, 4.0, 2.0, 30.0] and anns[1]["area"] == pytest.approx(8.0)
    dicts[0]["annotations"][0]["bbox"] = [1, 2, 3]
    with pytest.raises(ValueError, match="length 4 or 5"):
        convert_to_coco_dict(name)


def test_load_sem_seg(tmp_path, caplog):
    (tmp_path / "img" / "sub").mkdir(parents=True)
    (tmp_path / "gt" / "sub").mkdir(parents=True)
    for stem in ["a", "b", "sub/c"]:
        (tmp_path / "img" / f"{stem}.jpg").write_bytes(b"")
        (tmp_path / "gt" / f"{stem}.png").write_bytes(b"")
    (tmp_path / "img" / "extra.jpg").write_bytes(b"")
    dicts = load_sem_seg(str(tmp_path / "gt"), str(tmp_path / "img"))
    pairs = [(os.path.basename(d["file_name"]), os.path.basename(d["sem_seg_file_name"])) for d in dicts]
    assert pairs == [("a.jpg", "a.png"), ("b.jpg", "b.png")]
    with pytest.raises(FileNotFoundError, match="No annotations"):
        load_sem_seg(str(tmp_path / "img"), str(tmp_path / "img"), gt_ext="png")

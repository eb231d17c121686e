import json
import os

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_panoptic, register_coco_panoptic_separated
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES, _get_builtin_metadata
from detectron2.data.datasets.coco_panoptic import load_coco_panoptic_json


def _rgb_of(segment_id):
    # COCO panoptic pngs encode a segment id as R + 256 * G + 256^2 * B.
    return [segment_id % 256, segment_id // 256 % 256, segment_id // 256**2]


@pytest.fixture
def panoptic_dir(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "panoptic").mkdir()
    (tmp_path / "stuff").mkdir()
    png = np.zeros((8, 8, 3), dtype=np.uint8)
    png[:4] = _rgb_of(300)
    png[4:] = _rgb_of(70000)
    Image.fromarray(png).save(tmp_path / "panoptic" / "000000000001.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "stuff" / "000000000001.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / "000000000001.jpg")
    pan = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 8, "width": 8}],
        "annotations": [
            {"image_id": 1, "file_name": "000000000001.png", "segments_info": [
                {"id": 300, "category_id": 90, "iscrowd": 0, "area": 32, "bbox": [0, 0, 8, 4]},
                {"id": 70000, "category_id": 200, "iscrowd": 0, "area": 32, "bbox": [0, 4, 8, 4]},
            ]}
        ],
        "categories": COCO_CATEGORIES,
    }
    (tmp_path / "panoptic.json").write_text(json.dumps(pan))
    inst = {
        "images": pan["images"],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 90, "bbox": [0, 0, 8, 4], "area": 32, "iscrowd": 0,
                         "segmentation": [[0, 0, 8, 0, 8, 4, 0, 4]]}],
        "categories": [c for c in COCO_CATEGORIES if c["isthing"]],
    }
    (tmp_path / "instances.json").write_text(json.dumps(inst))
    return tmp_path


def test_load_coco_panoptic_json(panoptic_dir):
    meta = _get_builtin_metadata("coco_panoptic_standard")
    d = load_coco_panoptic_json(
        str(panoptic_dir / "panoptic.json"), str(panoptic_dir / "images"), str(panoptic_dir / "panoptic"), meta
    )
    assert len(d) == 1
    assert d[0]["file_name"] == str(panoptic_dir / "images" / "000000000001.jpg")
    assert d[0]["pan_seg_file_name"] == str(panoptic_dir / "panoptic" / "000000000001.png")
    assert d[0]["image_id"] == 1
    toothbrush, rug = d[0]["segments_info"]
    assert toothbrush["isthing"] and toothbrush["category_id"] == 79 and toothbrush["id"] == 300
    assert not rug["isthing"] and rug["category_id"] == 132  # last of the 133 classes
    with pytest.raises(FileNotFoundError, match="file_name"):
        load_coco_panoptic_json(str(panoptic_dir / "panoptic.json"), "/nonexistent", str(panoptic_dir / "panoptic"), meta)


def test_register_standard_and_separated(panoptic_dir):
    p = {k: str(panoptic_dir / k) for k in ("images", "panoptic", "stuff", "panoptic.json", "instances.json")}
    name = "test_pan"
    register_coco_panoptic(name, _get_builtin_metadata("coco_panoptic_standard"), p["images"], p["panoptic"],
                           p["panoptic.json"], p["instances.json"])
    register_coco_panoptic_separated(name, _get_builtin_metadata("coco_panoptic_separated"), p["images"],
                                     p["panoptic"], p["panoptic.json"], p["stuff"], p["instances.json"])
    try:
        meta = MetadataCatalog.get(name)
        assert meta.evaluator_type == "coco_panoptic_seg" and meta.label_divisor == 1000 and meta.ignore_label == 255
        assert len(DatasetCatalog.get(name)[0]["segments_info"]) == 2
        sep = DatasetCatalog.get(name + "_separated")
        assert sep[0]["sem_seg_file_name"].endswith(os.path.join("stuff", "000000000001.png"))
        assert sep[0]["annotations"][0]["category_id"] == 79
        assert MetadataCatalog.get(name + "_separated").sem_seg_root == p["stuff"]
        stuff = DatasetCatalog.get(name + "_stuffonly")
        assert list(stuff[0]) == ["file_name", "sem_seg_file_name"]
        assert MetadataCatalog.get(name + "_stuffonly").evaluator_type == "sem_seg"
    finally:
        for n in (name, name + "_separated", name + "_stuffonly"):
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_coco_metadata_facts():
    from torchvision.models._meta import _COCO_CATEGORIES as tv_coco  # COCO names indexed by id

    assert len(COCO_CATEGORIES) == 133
    things = [c for c in COCO_CATEGORIES if c["isthing"]]
    assert len(things) == 80
    assert all(tv_coco[c["id"]] == c["name"] for c in things)
    assert len({c["id"] for c in COCO_CATEGORIES}) == 133
    assert all(len(c["color"]) == 3 and all(0 <= v <= 255 for v in c["color"]) for c in COCO_CATEGORIES)
    coco = _get_builtin_metadata("coco")
    assert coco["thing_classes"][0] == "person" and coco["thing_classes"][-1] == "toothbrush"
    assert coco["thing_dataset_id_to_contiguous_id"][90] == 79 and coco["thing_colors"][0] == [220, 20, 60]
    sep = _get_builtin_metadata("coco_panoptic_separated")
    assert len(sep["stuff_classes"]) == 54 and sep["stuff_classes"][0] == "things"
    assert sep["stuff_dataset_id_to_contiguous_id"][0] == 0 and "wall" in sep["stuff_classes"]
    std = _get_builtin_metadata("coco_panoptic_standard")
    assert std["thing_classes"] == std["stuff_classes"] and len(std["stuff_classes"]) == 133
    person = _get_builtin_metadata("coco_person")
    from torchvision.models._meta import _COCO_PERSON_KEYPOINT_NAMES

    assert list(person["keypoint_names"]) == _COCO_PERSON_KEYPOINT_NAMES
    names = set(person["keypoint_names"])
    assert all(a in names and b in names for a, b in person["keypoint_flip_map"])
    assert all(a in names and b in names for a, b, _ in person["keypoint_connection_rules"])
    with pytest.raises(KeyError, match="No built-in metadata"):
        _get_builtin_metadata("nope")

import json

import numpy as np
import pytest
from PIL import Image

from detectron2.data.datasets.builtin_meta import CITYSCAPES_STUFF_CLASSES, CITYSCAPES_THING_CLASSES
from detectron2.data.datasets.cityscapes import load_cityscapes_instances, load_cityscapes_semantic
from detectron2.structures import BoxMode

import shapely  # noqa: E402,F401  (a test dependency of the project: pyproject [test], bootstrap)


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.fixture
def cityscapes(tmp_path):
    img_dir = tmp_path / "leftImg8bit" / "train" / "aachen"
    gt_dir = tmp_path / "gtFine" / "train" / "aachen"
    img_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    stem = "aachen_000000_000019_"
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(img_dir / (stem + "leftImg8bit.png"))
    objects = [
        {"label": "road", "polygon": _square(0, 30, 63, 47)},
        {"label": "car", "polygon": _square(10, 10, 30, 30)},
        {"label": "person", "polygon": _square(20, 20, 40, 40)},  # drawn last: occludes the car
        {"label": "cargroup", "polygon": _square(45, 5, 60, 15)},
        {"label": "license plate", "polygon": _square(12, 12, 14, 14)},
    ]
    (gt_dir / (stem + "gtFine_polygons.json")).write_text(json.dumps({"imgHeight": 48, "imgWidth": 64, "objects": objects}))
    inst = np.zeros((48, 64), np.uint16)  # instanceIds pngs are 16 bit
    inst[10:20, 10:30] = 26 * 1000  # car instance 0
    inst[30:40, 40:50] = 24  # person crowd region
    Image.fromarray(inst).save(gt_dir / (stem + "gtFine_instanceIds.png"))
    for kind in ("labelIds", "labelTrainIds"):
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(gt_dir / (stem + f"gtFine_{kind}.png"))
    return str(tmp_path / "leftImg8bit" / "train"), str(tmp_path / "gtFine" / "train")


def test_instances_from_json(cityscapes):
    (d,) = load_cityscapes_instances(*cityscapes, from_json=True, to_polygons=True)
    assert (d["height"], d["width"]) == (48, 64) and d["image_id"].endswith("leftImg8bit.png")
    by_class = {CITYSCAPES_THING_CLASSES[a["category_id"]] + ("_crowd" if a["iscrowd"] else ""): a for a in d["annotations"]}
    assert set(by_class) == {"person", "car", "car_crowd"}  # road and license plate are not instances
    car = by_class["car"]
    assert car["bbox_mode"] == BoxMode.XYXY_ABS
    # the car minus the person drawn over it (plus the 0.5 px offset and buffer)
    x0, y0, x1, y1 = car["bbox"]
    assert x0 == pytest.approx(10.0, abs=0.01) and y0 == pytest.approx(10.0, abs=0.01)
    assert x1 == pytest.approx(31.0, abs=0.01) and y1 == pytest.approx(31.0, abs=0.01)
    poly = np.asarray(car["segmentation"][0]).reshape(-1, 2)
    assert not any((px > 20.5 and py > 20.5 and px < 30 and py < 30) for px, py in poly)  # occluded corner gone


def test_instances_from_png(cityscapes):
    (d,) = load_cityscapes_instances(*cityscapes, from_json=False, to_polygons=True)
    anns = sorted(d["annotations"], key=lambda a: a["category_id"])
    assert [(CITYSCAPES_THING_CLASSES[a["category_id"]], a["iscrowd"]) for a in anns] == [("person", True), ("car", False)]
    assert anns[1]["bbox"] == (10.0, 10.0, 29.0, 19.0)
    (d,) = load_cityscapes_instances(*cityscapes, from_json=False, to_polygons=False)
    assert all(isinstance(a["segmentation"], dict) for a in d["annotations"])
    with pytest.raises(ValueError, match="polygon"):
        load_cityscapes_instances(*cityscapes, from_json=True, to_polygons=False)


def test_semantic(cityscapes):
    (d,) = load_cityscapes_semantic(*cityscapes)
    assert d["sem_seg_file_name"].endswith("gtFine_labelTrainIds.png") and (d["height"], d["width"]) == (48, 64)


def test_classes_match_label_table():
    from torchvision.datasets import Cityscapes

    things = [c.name for c in Cityscapes.classes if c.has_instances and not c.ignore_in_eval]
    assert things == CITYSCAPES_THING_CLASSES
    stuff = sorted((c for c in Cityscapes.classes if c.train_id not in (255, -1)), key=lambda c: c.train_id)
    assert [c.name for c in stuff] == CITYSCAPES_STUFF_CLASSES

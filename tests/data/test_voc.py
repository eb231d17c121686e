import os

import pytest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_voc_instances, register_pascal_voc
from detectron2.data.datasets.pascal_voc import CLASS_NAMES
from detectron2.structures import BoxMode

XML = """<annotation>
  <filename>{fid}.jpg</filename>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  {objects}
</annotation>"""
OBJ = """<object><name>{name}</name><difficult>{difficult}</difficult>
  <bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"""


def _voc(root, split_ids, objects):
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for split, ids in split_ids.items():
        with open(os.path.join(root, "ImageSets", "Main", split + ".txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    for fid, objs in objects.items():
        body = "".join(OBJ.format(name=n, difficult=d, b=b) for n, d, b in objs)
        with open(os.path.join(root, "Annotations", fid + ".xml"), "w") as f:
            f.write(XML.format(fid=fid, objects=body))


def test_load_voc_instances(tmp_path):
    root = str(tmp_path / "VOC2007")
    _voc(
        root,
        {"train": ["000005", "000007"], "val": ["000009"]},
        {
            "000005": [("chair", 0, (263, 211, 324, 339)), ("person", 1, (1, 1, 500, 375))],
            "000007": [("car", 0, (141, 50, 500, 330))],
            "000009": [("horse", 0, (69, 172, 270, 330))],
        },
    )
    dicts = load_voc_instances(root, "train", CLASS_NAMES)
    assert [d["image_id"] for d in dicts] == ["000005", "000007"]
    d = dicts[0]
    assert d["file_name"] == os.path.join(root, "JPEGImages", "000005.jpg")
    assert (d["height"], d["width"]) == (375, 500)
    chair, person = d["annotations"]
    assert chair["category_id"] == CLASS_NAMES.index("chair") and chair["bbox_mode"] == BoxMode.XYXY_ABS
    assert chair["bbox"] == [262.0, 210.0, 324.0, 339.0]  # 1-based inclusive -> continuous
    assert person["bbox"] == [0.0, 0.0, 500.0, 375.0]  # "difficult" objects are kept
    assert len(load_voc_instances(root, "val", CLASS_NAMES)) == 1  # a one-line split file

    with pytest.raises(ValueError, match="class 'chair'"):
        load_voc_instances(root, "train", ["person", "car"])


def test_register_pascal_voc(tmp_path):
    root = str(tmp_path / "VOC2012")
    name = "test_voc_register"
    register_pascal_voc(name, root, "train", 2012, class_names=["car"])  # lazy: nothing exists yet
    try:
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["car"] and meta.year == 2012 and meta.split == "train"
        _voc(root, {"train": ["a"]}, {"a": [("car", 0, (2, 3, 10, 20))]})
        assert DatasetCatalog.get(name)[0]["annotations"][0]["category_id"] == 0
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)

"""ADE20K sem-seg and Cityscapes panoptic: builtin registration (names, metadata) and
the loaders on synthetic files in upstream's layouts."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin import register_all_ade20k
from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES
from detectron2.data.datasets.cityscapes_panoptic import (
    get_cityscapes_panoptic_categories,
    load_cityscapes_panoptic,
)


def test_builtin_names_are_registered_with_upstreams_metadata():
    names = DatasetCatalog.list()
    for n in ("ade20k_sem_seg_train", "ade20k_sem_seg_val", "cityscapes_fine_panoptic_train", "cityscapes_fine_panoptic_val"):
        assert n in names
    ade = MetadataCatalog.get("ade20k_sem_seg_val")
    assert ade.evaluator_type == "sem_seg" and ade.ignore_label == 255
    assert len(ade.stuff_classes) == 150 and ade.stuff_classes[:3] == ["wall", "building", "sky"]
    assert ade.stuff_classes[-1] == "flag"
    assert ade.sem_seg_root.endswith(os.path.join("ADEChallengeData2016", "annotations_detectron2", "validation"))
    cs = MetadataCatalog.get("cityscapes_fine_panoptic_val")
    assert cs.evaluator_type == "cityscapes_panoptic_seg" and cs.label_divisor == 1000 and cs.ignore_label == 255
    assert cs.thing_dataset_id_to_contiguous_id == {24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
    assert cs.stuff_dataset_id_to_contiguous_id == {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10}
    assert cs.thing_classes == cs.stuff_classes and len(cs.stuff_classes) == 19
    assert cs.stuff_classes[0] == "road" and cs.stuff_classes[18] == "bicycle"
    assert cs.stuff_colors[13] == (0, 0, 142)  # car
    assert cs.gt_dir.endswith(os.path.join("gtFine", "val"))
    assert cs.panoptic_json.endswith("cityscapes_panoptic_val.json")


def test_cityscapes_categories_follow_train_ids():
    cats = get_cityscapes_panoptic_categories()
    assert [c["trainId"] for c in cats] == list(range(19))
    assert sum(c["isthing"] for c in cats) == 8
    # independent source: torchvision's copy of the Cityscapes label table
    from torchvision.datasets import Cityscapes

    ref = {c.train_id: c for c in Cityscapes.classes if 0 <= c.train_id < 255}
    for c in cats:
        r = ref[c["trainId"]]
        assert (c["name"], c["id"], c["color"], bool(c["isthing"])) == (r.name, r.id, tuple(r.color), r.has_instances)


def test_ade20k_loader_pairs_images_and_labels(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    for split in ("training", "validation"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations_detectron2" / split).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images" / split / f"ADE_{split}_{i:08d}.jpg")
            Image.fromarray(np.full((8, 8), i, np.uint8)).save(root / "annotations_detectron2" / split / f"ADE_{split}_{i:08d}.png")
    def reregister(root):
        for split in ("train", "val"):
            DatasetCatalog.remove(f"ade20k_sem_seg_{split}")
            MetadataCatalog.remove(f"ade20k_sem_seg_{split}")
        register_all_ade20k(root)

    try:
        reregister(str(tmp_path))
        dicts = DatasetCatalog.get("ade20k_sem_seg_val")
        assert len(dicts) == 2
        for d in dicts:
            stem = os.path.splitext(os.path.basename(d["file_name"]))[0]
            assert os.path.basename(d["sem_seg_file_name"]) == stem + ".png"
            assert "validation" in d["file_name"]
    finally:
        reregister(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))


def test_cityscapes_panoptic_loader(tmp_path):
    img_dir = tmp_path / "leftImg8bit" / "val" / "lindau"
    gt_dir = tmp_path / "gtFine" / "cityscapes_panoptic_val"
    sem_dir = tmp_path / "gtFine" / "val" / "lindau"
    for d in (img_dir, gt_dir, sem_dir):
        d.mkdir(parents=True)
    stems = ["lindau_000000_000019", "lindau_000001_000019"]
    anns = []
    for stem in stems:
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(img_dir / f"{stem}_leftImg8bit.png")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(sem_dir / f"{stem}_gtFine_labelTrainIds.png")
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(gt_dir / f"{stem}_gtFine_panoptic.png")
        anns.append({
            "image_id": stem,
            "file_name": f"{stem}_gtFine_panoptic.png",
            "segments_info": [
                {"id": 7, "category_id": 7, "area": 10, "bbox": [0, 0, 2, 2], "iscrowd": 0},
                {"id": 26001, "category_id": 26, "area": 4, "bbox": [1, 1, 2, 2], "iscrowd": 0},
            ],
        })
    gt_json = tmp_path / "gtFine" / "cityscapes_panoptic_val.json"
    gt_json.write_text(json.dumps({"annotations": anns}))
    meta = MetadataCatalog.get("cityscapes_fine_panoptic_val").as_dict()
    dicts = load_cityscapes_panoptic(str(tmp_path / "leftImg8bit" / "val"), str(gt_dir), str(gt_json), meta)
    assert [d["image_id"] for d in dicts] == stems
    d = dicts[0]
    assert d["sem_seg_file_name"] == str(sem_dir / f"{stems[0]}_gtFine_labelTrainIds.png")
    assert d["pan_seg_file_name"] == str(gt_dir / f"{stems[0]}_gtFine_panoptic.png")
    assert [s["category_id"] for s in d["segments_info"]] == [0, 13]  # road, car as train ids
    assert anns[0]["segments_info"][1]["category_id"] == 26  # the json's dicts are not mutated
    with pytest.raises(FileNotFoundError, match="createPanopticImgs"):
        load_cityscapes_panoptic(str(img_dir.parent), str(gt_dir), str(tmp_path / "missing.json"), meta)
    anns[0]["segments_info"][0]["category_id"] = 5  # not an evaluated class
    gt_json.write_text(json.dumps({"annotations": anns}))
    with pytest.raises(KeyError, match="category_id 5"):
        load_cityscapes_panoptic(str(img_dir.parent), str(gt_dir), str(gt_json), meta)

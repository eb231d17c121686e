"""LVISEvaluator and COCOPanopticEvaluator with the real lvis and panopticapi packages
(scripts/bootstrap.sh installs them), and the clear errors of the evaluators whose
toolkits are missing (Cityscapes here; all three with their package hidden)."""
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from detectron2.evaluation import (
    CityscapesInstanceEvaluator,
    CityscapesSemSegEvaluator,
    COCOPanopticEvaluator,
    LVISEvaluator,
)
from detectron2.structures import Boxes, Instances

SIZE = 64


# ---------------------------------------------------------------- LVIS
LVIS_CATEGORIES = [
    {"id": 1, "name": "apple", "frequency": "r"},
    {"id": 2, "name": "bottle", "frequency": "c"},
    {"id": 3, "name": "cup", "frequency": "f"},
]


def _lvis_dataset(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, 7):
        present = set()
        for _ in range(rng.integers(1, 4)):
            w, h = rng.uniform(6, 40, size=2)
            x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
            cat = int(rng.integers(1, 4))
            present.add(cat)
            polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h],
                 "area": float(w * h), "segmentation": [polygon]}
            )
        images.append(
            {"id": image_id, "width": SIZE, "height": SIZE, "not_exhaustive_category_ids": [],
             "neg_category_ids": sorted({1, 2, 3} - present)}
        )
    gt = {"images": images, "annotations": annotations, "categories": LVIS_CATEGORIES}
    path = tmp_path / "lvis.json"
    path.write_text(json.dumps(gt))
    return str(path), gt


def _lvis_predictions(gt, drop_category=None):
    predictions = []
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"] and a["category_id"] != drop_category]
        instances = Instances((SIZE, SIZE))
        instances.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]).reshape(-1, 4))
        instances.scores = torch.linspace(0.9, 0.5, len(anns))
        instances.pred_classes = torch.tensor([a["category_id"] - 1 for a in anns], dtype=torch.int64)
        masks = torch.zeros(len(anns), SIZE, SIZE, dtype=torch.bool)
        for k, (x, y, w, h) in enumerate(a["bbox"] for a in anns):
            masks[k, int(round(y)) : int(round(y + h)), int(round(x)) : int(round(x + w))] = True
        instances.pred_masks = masks
        predictions.append((image["id"], instances))
    return predictions


def _run(evaluator, predictions, key="instances"):
    evaluator.reset()
    for image_id, output in predictions:
        evaluator.process([{"image_id": image_id}], [{key: output}])
    return evaluator.evaluate()


def test_lvis_perfect_boxes_and_masks(tmp_path, register_dataset):
    json_file, gt = _lvis_dataset(tmp_path)
    name = register_dataset(json_file=json_file, thing_classes=[c["name"] for c in LVIS_CATEGORIES])
    results = _run(LVISEvaluator(name, output_dir=str(tmp_path / "out")), _lvis_predictions(gt))
    assert set(results) == {"bbox", "segm"}
    assert set(results["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"}
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert results["segm"]["AP50"] > 90  # rasterised masks of the polygons
    written = json.loads((tmp_path / "out" / "lvis_instances_results.json").read_text())
    assert {r["category_id"] for r in written} == {1, 2, 3}  # 0-based classes + 1


def test_lvis_frequency_groups_and_max_dets(tmp_path, register_dataset):
    json_file, gt = _lvis_dataset(tmp_path)
    name = register_dataset(json_file=json_file, thing_classes=[c["name"] for c in LVIS_CATEGORIES])
    # the rare category is never detected
    results = _run(LVISEvaluator(name, tasks=("bbox",)), _lvis_predictions(gt, drop_category=1))["bbox"]
    assert results["APr"] == pytest.approx(0.0)
    assert results["APc"] == pytest.approx(100.0) and results["APf"] == pytest.approx(100.0)
    # one detection per image: the lower-scored ones are dropped
    limited = _run(LVISEvaluator(name, tasks=("bbox",), max_dets_per_image=1), _lvis_predictions(gt))["bbox"]
    assert limited["AP"] < 100.0


def test_lvis_box_proposals(tmp_path, register_dataset):
    json_file, gt = _lvis_dataset(tmp_path)
    name = register_dataset(json_file=json_file, thing_classes=[c["name"] for c in LVIS_CATEGORIES])
    predictions = []
    for image_id, instances in _lvis_predictions(gt):
        proposals = Instances((SIZE, SIZE), proposal_boxes=instances.pred_boxes, objectness_logits=instances.scores)
        predictions.append((image_id, proposals))
    results = _run(LVISEvaluator(name, output_dir=str(tmp_path)), predictions, key="proposals")
    assert results["box_proposals"]["AR@100"] == pytest.approx(100.0)
    assert (tmp_path / "box_proposals.pkl").exists()


# ---------------------------------------------------------------- panoptic
PANOPTIC_CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 5, "name": "car", "isthing": 1},
    {"id": 20, "name": "sky", "isthing": 0},
]


def _rgb(ids):
    from panopticapi.utils import id2rgb

    return Image.fromarray(id2rgb(ids))


@pytest.fixture
def panoptic_dataset(tmp_path, register_dataset):
    """Two images: sky on top, a person and a car below (segment ids 1..3, 0 is void)."""
    gt_dir = tmp_path / "panoptic_gt"
    gt_dir.mkdir()
    images, annotations, label_images = [], [], []
    for image_id in (1, 2):
        labels = np.zeros((SIZE, SIZE), dtype=np.int64)  # 0: void
        labels[: SIZE // 2] = 3  # sky
        labels[40:60, 5:25] = 1  # person
        labels[40:50 + 5 * image_id, 30:60] = 2  # car
        segments = [
            {"id": 1, "category_id": 1, "iscrowd": 0},
            {"id": 2, "category_id": 5, "iscrowd": 0},
            {"id": 3, "category_id": 20, "iscrowd": 0},
        ]
        for s in segments:
            s["area"] = int((labels == s["id"]).sum())
        _rgb(labels).save(gt_dir / f"{image_id:06d}.png")
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "width": SIZE, "height": SIZE})
        annotations.append({"image_id": image_id, "file_name": f"{image_id:06d}.png", "segments_info": segments})
        label_images.append(labels)
    gt_json = tmp_path / "panoptic.json"
    gt_json.write_text(json.dumps({"images": images, "annotations": annotations, "categories": PANOPTIC_CATEGORIES}))
    name = register_dataset(
        panoptic_json=str(gt_json),
        panoptic_root=str(gt_dir),
        thing_dataset_id_to_contiguous_id={1: 0, 5: 1},
        stuff_dataset_id_to_contiguous_id={20: 2},
        label_divisor=1000,
    )
    return name, label_images


def test_panoptic_perfect_prediction_with_segments_info(panoptic_dataset, tmp_path):
    name, label_images = panoptic_dataset
    evaluator = COCOPanopticEvaluator(name, output_dir=str(tmp_path / "out"))
    evaluator.reset()
    for image_id, labels in zip((1, 2), label_images):
        segments_info = [
            {"id": 1, "category_id": 0, "isthing": True},
            {"id": 2, "category_id": 1, "isthing": True},
            {"id": 3, "category_id": 2, "isthing": False},
        ]
        output = {"panoptic_seg": (torch.from_numpy(labels).int(), segments_info)}
        evaluator.process([{"image_id": image_id, "file_name": f"/images/{image_id:06d}.jpg"}], [output])
    results = evaluator.evaluate()["panoptic_seg"]
    assert set(results) == {"PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"}
    for value in results.values():
        assert value == pytest.approx(100.0)
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert {s["category_id"] for a in predictions["annotations"] for s in a["segments_info"]} == {1, 5, 20}


def test_panoptic_labels_without_segments_info(panoptic_dataset):
    """Outputs of ``class * label_divisor + instance`` (-1 void) without segments_info; the
    car of image 2 is predicted as a person."""
    name, label_images = panoptic_dataset
    evaluator = COCOPanopticEvaluator(name)
    evaluator.reset()
    contiguous = {1: 0 * 1000 + 1, 2: 1 * 1000 + 1, 3: 2 * 1000, 0: -1}
    for image_id, labels in zip((1, 2), label_images):
        panoptic = np.vectorize(contiguous.get)(labels)
        if image_id == 2:
            panoptic[labels == 2] = 0 * 1000 + 2
        output = {"panoptic_seg": (torch.from_numpy(panoptic).int(), None)}
        evaluator.process([{"image_id": image_id, "file_name": f"{image_id:06d}.jpg"}], [output])
    results = evaluator.evaluate()["panoptic_seg"]
    assert results["PQ_st"] == pytest.approx(100.0)
    # things: person TP twice (+1 FP), car 1 TP + 1 FN -> RQ of person 2/2.5, of car 1/1.5
    assert results["RQ_th"] == pytest.approx(100 * (2 / 2.5 + 1 / 1.5) / 2)


# ---------------------------------------------------------------- missing toolkits
@pytest.fixture
def hide_module(monkeypatch):
    """``hide_module("lvis")`` makes importing that package fail as if not installed
    (a None entry in sys.modules stops the import system)."""

    def hide(package):
        for name in list(sys.modules):
            if name.startswith(package + "."):
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.setitem(sys.modules, package, None)

    return hide


@pytest.mark.parametrize(
    "evaluator, package",
    [
        (LVISEvaluator, "lvis"),
        (COCOPanopticEvaluator, "panopticapi"),
        (CityscapesInstanceEvaluator, "cityscapesscripts"),
        (CityscapesSemSegEvaluator, "cityscapesscripts"),
    ],
)
def test_missing_toolkit_gives_a_clear_error(evaluator, package, hide_module, register_dataset):
    hide_module(package)
    name = register_dataset(json_file="unused.json")
    with pytest.raises(ImportError, match=f"{evaluator.__name__} needs the '{package}' package.*pip install"):
        evaluator(name)

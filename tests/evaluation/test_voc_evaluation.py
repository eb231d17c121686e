"""PascalVOCDetectionEvaluator and voc_eval / voc_ap on a small generated VOC tree."""
import numpy as np
import pytest
import torch

from detectron2.evaluation import PascalVOCDetectionEvaluator
from detectron2.evaluation.pascal_voc_evaluation import parse_rec, voc_ap, voc_eval
from detectron2.structures import Boxes, Instances

CLASSES = ["cat", "dog"]
# image id -> [(class, xmin, ymin, xmax, ymax, difficult)] in VOC's 1-based pixels
OBJECTS = {
    "000001": [("cat", 10, 10, 50, 50, 0), ("dog", 60, 60, 100, 90, 0)],
    "000002": [("cat", 5, 5, 40, 45, 0), ("cat", 50, 50, 70, 70, 1)],
    "000003": [("dog", 20, 30, 80, 90, 0)],
}


def _xml(objects):
    parts = ["<annotation><size><width>120</width><height>100</height></size>"]
    for name, x0, y0, x1, y1, difficult in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


@pytest.fixture
def voc_dir(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, objects in OBJECTS.items():
        (tmp_path / "Annotations" / f"{image_id}.xml").write_text(_xml(objects))
    (tmp_path / "ImageSets" / "Main" / "test.txt").write_text("\n".join(OBJECTS) + "\n")
    return tmp_path


def _instances(rows):
    """rows: (class index, score, x0, y0, x1, y1) in the loader's 0-based xmin/ymin."""
    instances = Instances((100, 120))
    instances.pred_boxes = Boxes(torch.tensor([r[2:] for r in rows], dtype=torch.float32).reshape(-1, 4))
    instances.scores = torch.tensor([r[1] for r in rows], dtype=torch.float32)
    instances.pred_classes = torch.tensor([r[0] for r in rows], dtype=torch.int64)
    return instances


def _run(evaluator, per_image):
    evaluator.reset()
    for image_id, rows in per_image.items():
        evaluator.process([{"image_id": image_id}], [{"instances": _instances(rows)}])
    return evaluator.evaluate()


def _perfect():
    return {
        image_id: [(CLASSES.index(n), 0.9, x0 - 1, y0 - 1, x1, y1) for n, x0, y0, x1, y1, d in objects if not d]
        for image_id, objects in OBJECTS.items()
    }


@pytest.mark.parametrize("year", [2007, 2012])
def test_perfect_detections_give_100(voc_dir, register_dataset, year):
    name = register_dataset(dirname=str(voc_dir), split="test", year=year, thing_classes=CLASSES)
    results = _run(PascalVOCDetectionEvaluator(name), _perfect())["bbox"]
    assert results == pytest.approx({"AP": 100.0, "AP50": 100.0, "AP75": 100.0})


def test_misses_false_positives_and_difficult(voc_dir, register_dataset):
    name = register_dataset(dirname=str(voc_dir), split="test", year=2012, thing_classes=CLASSES)
    predictions = _perfect()
    predictions["000002"] = [
        (0, 0.95, 49, 49, 70, 70),  # the difficult cat: neither true nor false positive
        (0, 0.8, 4, 4, 40, 45),
    ]
    predictions["000003"] = [(1, 0.99, 0, 0, 10, 10)]  # a confident false positive; this dog is missed
    results = _run(PascalVOCDetectionEvaluator(name), predictions)["bbox"]
    # cat: both found, no false positive -> AP 100; dog: one of two found, ranked after a
    # false positive -> precision 1/2 at recall 1/2 -> area AP 0.25
    assert results["AP50"] == pytest.approx((100 + 25) / 2)


def test_voc_ap_area_and_11_point():
    rec = np.array([0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 2 / 3])
    assert voc_ap(rec, prec) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    # 11-point: recall thresholds 0.0..0.5 get precision 1, 0.6..1.0 get 2/3
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0
    assert voc_ap(np.zeros(0), np.zeros(0), use_07_metric=True) == 0.0


def test_voc_eval_iou_threshold(voc_dir, tmp_path):
    det = tmp_path / "dets_{}.txt"
    # the dog of image 3 (61x61 px) found by a 61x71 box containing it: IoU 61/71
    (tmp_path / "dets_dog.txt").write_text("000003 0.9 20 30 80 100\n")
    anno = str(voc_dir / "Annotations" / "{}.xml")
    imageset = str(voc_dir / "ImageSets" / "Main" / "test.txt")
    rec, prec, ap = voc_eval(str(det), anno, imageset, "dog", ovthresh=0.5)
    assert rec.tolist() == [0.5] and prec.tolist() == [1.0] and ap == pytest.approx(0.5)
    _, _, ap = voc_eval(str(det), anno, imageset, "dog", ovthresh=0.9)
    assert ap == 0.0
    (tmp_path / "dets_cat.txt").write_text("")
    rec, prec, ap = voc_eval(str(det), anno, imageset, "cat")
    assert len(rec) == 0 and ap == 0.0


def test_parse_rec(voc_dir):
    objects = parse_rec(str(voc_dir / "Annotations" / "000002.xml"))
    assert [o["name"] for o in objects] == ["cat", "cat"]
    assert objects[1]["difficult"] == 1 and objects[1]["bbox"] == [50, 50, 70, 70]


def test_bad_year(voc_dir, register_dataset):
    name = register_dataset(dirname=str(voc_dir), split="test", year=2010, thing_classes=CLASSES)
    with pytest.raises(ValueError, match="2007 or 2012"):
        PascalVOCDetectionEvaluator(name)

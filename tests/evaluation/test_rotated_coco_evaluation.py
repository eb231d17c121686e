"""RotatedCOCOEvaluator: rotated-box IoU through pairwise_iou_rotated, the C++ and the
pycocotools paths agree, angle-0 boxes give the axis-aligned COCOEvaluator's numbers."""
import json

import numpy as np
import pytest
import torch

from detectron2.evaluation import COCOEvaluator, RotatedCOCOEvaluator
from detectron2.evaluation.rotated_coco_evaluation import RotatedCOCOeval
from detectron2.structures import Boxes, Instances, RotatedBoxes

SIZE = 200


def _generate(seed, num_images=8, angles=True):
    """Ground truth with XYWHA boxes (cx, cy, w, h, angle) and jittered rotated detections."""
    rng = np.random.default_rng(seed)
    images, annotations, predictions = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": SIZE, "height": SIZE})
        detections, scores, classes = [], [], []
        for _ in range(rng.integers(1, 6)):
            w, h = np.exp(rng.uniform(np.log(8), np.log(120), size=2))
            cx, cy = rng.uniform(w / 2, SIZE - w / 2), rng.uniform(h / 2, SIZE - h / 2)
            angle = float(rng.uniform(-90, 90)) if angles else 0.0
            cat = int(rng.integers(0, 2))
            box = [float(cx), float(cy), float(w), float(h), angle]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": cat + 1, "bbox": box,
                 "area": float(w * h), "iscrowd": 0}
            )
            if rng.random() < 0.8:
                jitter = [cx + rng.normal(0, 0.05 * w), cy + rng.normal(0, 0.05 * h), w * np.exp(rng.normal(0, 0.05)),
                          h * np.exp(rng.normal(0, 0.05)), angle + (rng.normal(0, 5) if angles else 0.0)]
                detections.append(jitter)
                classes.append(cat)
        for _ in range(rng.integers(0, 3)):
            w, h = rng.uniform(8, 60, size=2)
            detections.append([rng.uniform(0, SIZE), rng.uniform(0, SIZE), w, h, rng.uniform(-90, 90) if angles else 0.0])
            classes.append(int(rng.integers(0, 2)))
        scores = rng.integers(1, 5, size=len(detections)) / 4
        instances = Instances((SIZE, SIZE))
        instances.pred_boxes = RotatedBoxes(torch.tensor(detections, dtype=torch.float32).reshape(-1, 5))
        instances.scores = torch.tensor(scores, dtype=torch.float32)
        instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
        predictions.append(instances)
    categories = [{"id": 1, "name": "plane"}, {"id": 2, "name": "ship"}]
    return {"images": images, "annotations": annotations, "categories": categories}, predictions


def _register(register_dataset, tmp_path, gt, filename="gt.json"):
    path = tmp_path / filename
    path.write_text(json.dumps(gt))
    return register_dataset(json_file=str(path), thing_classes=["plane", "ship"], thing_dataset_id_to_contiguous_id={1: 0, 2: 1})


def _run(evaluator, predictions):
    evaluator.reset()
    for image_id, instances in enumerate(predictions, start=1):
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    return evaluator.evaluate()


def test_fast_and_pycocotools_paths_agree(register_dataset, tmp_path):
    gt, predictions = _generate(0)
    name = _register(register_dataset, tmp_path, gt)
    fast = _run(RotatedCOCOEvaluator(name), predictions)["bbox"]
    slow = _run(RotatedCOCOEvaluator(name, use_fast_impl=False), predictions)["bbox"]
    assert fast.keys() == slow.keys() == {"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-plane", "AP-ship"}
    for metric in fast:
        assert fast[metric] == pytest.approx(slow[metric], abs=1e-6, nan_ok=True), metric
    assert 20 < fast["AP"] < 95


def test_angle_zero_equals_axis_aligned_evaluation(register_dataset, tmp_path):
    gt, predictions = _generate(1, angles=False)
    name = _register(register_dataset, tmp_path, gt)
    rotated = _run(RotatedCOCOEvaluator(name), predictions)["bbox"]

    # The same boxes as XYWH ground truth and XYXY Boxes predictions.
    def to_xywh(b):
        return [b[0] - b[2] / 2, b[1] - b[3] / 2, b[2], b[3]]

    axis_gt = dict(gt, annotations=[dict(a, bbox=to_xywh(a["bbox"])) for a in gt["annotations"]])
    axis_name = _register(register_dataset, tmp_path, axis_gt, "axis.json")
    axis_predictions = []
    for instances in predictions:
        axis = Instances(instances.image_size, scores=instances.scores, pred_classes=instances.pred_classes)
        t = instances.pred_boxes.tensor
        axis.pred_boxes = Boxes(torch.stack([t[:, 0] - t[:, 2] / 2, t[:, 1] - t[:, 3] / 2, t[:, 0] + t[:, 2] / 2, t[:, 1] + t[:, 3] / 2], 1))
        axis_predictions.append(axis)
    axis_aligned = _run(COCOEvaluator(axis_name, tasks=("bbox",)), axis_predictions)["bbox"]
    for metric in rotated:
        assert rotated[metric] == pytest.approx(axis_aligned[metric], abs=1e-3, nan_ok=True), metric


def test_perfect_rotated_detections(register_dataset, tmp_path):
    gt, _ = _generate(2)
    name = _register(register_dataset, tmp_path, gt)
    predictions = []
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        instances = Instances((SIZE, SIZE))
        instances.pred_boxes = RotatedBoxes(torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 5))
        instances.scores = torch.ones(len(anns))
        instances.pred_classes = torch.tensor([a["category_id"] - 1 for a in anns])
        predictions.append(instances)
    results = _run(RotatedCOCOEvaluator(name, output_dir=str(tmp_path / "out")), predictions)["bbox"]
    assert results["AP"] == pytest.approx(100.0) and results["AP75"] == pytest.approx(100.0)
    written = json.loads((tmp_path / "out" / "coco_instances_results.json").read_text())
    assert all(len(r["bbox"]) == 5 for r in written)


def test_rotated_iou_helpers():
    evaluator = RotatedCOCOeval()
    square = [50.0, 50.0, 20.0, 20.0, 0.0]
    turned = [50.0, 50.0, 20.0, 20.0, 90.0]
    assert evaluator.is_rotated([square]) and not evaluator.is_rotated([[1, 2, 3, 4]]) and not evaluator.is_rotated([])
    iou = evaluator.compute_iou_dt_gt([square], [turned, [60.0, 50.0, 20.0, 20.0, 0.0]], [0, 0])
    assert iou.shape == (1, 2)
    assert iou[0, 0] == pytest.approx(1.0, abs=1e-5)  # a square turned by 90 degrees is itself
    assert iou[0, 1] == pytest.approx(1 / 3, abs=1e-5)  # shifted by half its width
    # 4-number ground truth (XYWH) is taken as angle 0: [40, 40, 20, 20] is centred at (50, 50)
    assert evaluator.compute_iou_dt_gt([square], [[40.0, 40.0, 20.0, 20.0]], [0])[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="crowd"):
        evaluator.compute_iou_dt_gt([square], [turned], [1])
    with pytest.raises(ValueError, match="convert"):
        evaluator.boxlist_to_tensor([[1.0, 2.0, 3.0, 4.0, 5.0]], output_box_dim=4)
    assert evaluator.boxlist_to_tensor([], output_box_dim=5).shape == (0, 5)


def test_only_bbox_task(register_dataset, tmp_path):
    gt, predictions = _generate(3)
    name = _register(register_dataset, tmp_path, gt)
    with pytest.raises(ValueError, match="Only bbox"):
        _run(RotatedCOCOEvaluator(name, tasks=("bbox", "segm")), predictions)

"""SemSegEvaluator: confusion matrix with an ignore label, mIoU / fwIoU / mACC / pACC and
per-class values against hand-computed numbers, RLE json output, boundary IoU."""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from detectron2.evaluation import SemSegEvaluator
from detectron2.evaluation.sem_seg_evaluation import load_image_into_numpy_array

IGNORE = 255


def _logits(labels, num_classes):
    """CxHxW scores whose argmax is ``labels``."""
    return torch.nn.functional.one_hot(torch.as_tensor(labels), num_classes).permute(2, 0, 1).float()


@pytest.fixture
def dataset(tmp_path, register_dataset):
    gt = [
        np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, IGNORE, IGNORE]], dtype=np.uint8),
        np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=np.uint8),
    ]
    records = []
    for i, labels in enumerate(gt):
        path = tmp_path / f"gt_{i}.png"
        Image.fromarray(labels).save(path)
        records.append({"file_name": f"img_{i}.jpg", "sem_seg_file_name": str(path)})
    name = register_dataset(records, stuff_classes=["sky", "road", "car", "boat"], ignore_label=IGNORE)
    return name, gt


PREDICTIONS = [
    np.array([[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 3, 0]]),
    np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 0, 0, 0]]),
]


def _run(evaluator):
    evaluator.reset()
    for i, pred in enumerate(PREDICTIONS):
        evaluator.process([{"file_name": f"img_{i}.jpg"}], [{"sem_seg": _logits(pred, 4)}])
    return evaluator.evaluate()["sem_seg"]


def _expected(gt, predictions, num_classes=4):
    conf = np.zeros((num_classes, num_classes))  # [pred, gt] over non-ignored pixels
    for g, p in zip(gt, predictions):
        keep = g != IGNORE
        for pi, gi in zip(p[keep], g[keep]):
            conf[pi, gi] += 1
    tp = np.diag(conf)
    pos_gt, pos_pred = conf.sum(0), conf.sum(1)
    present = pos_gt > 0
    iou = tp[present] / (pos_gt + pos_pred - tp)[present]
    acc = tp[present] / pos_gt[present]
    return {
        "mIoU": 100 * iou.mean(),
        "fwIoU": 100 * np.sum(iou * pos_gt[present] / pos_gt.sum()),
        "mACC": 100 * acc.mean(),
        "pACC": 100 * tp.sum() / pos_gt.sum(),
        "IoU": dict(zip(np.flatnonzero(present), 100 * iou)),
        "ACC": dict(zip(np.flatnonzero(present), 100 * acc)),
    }


def test_metrics_match_hand_computation(dataset):
    name, gt = dataset
    results = _run(SemSegEvaluator(name, distributed=False))
    expected = _expected(gt, PREDICTIONS)
    for key in ("mIoU", "fwIoU", "mACC", "pACC"):
        assert results[key] == pytest.approx(expected[key]), key
    names = ["sky", "road", "car", "boat"]
    for c, class_name in enumerate(names[:3]):
        assert results[f"IoU-{class_name}"] == pytest.approx(expected["IoU"][c])
        assert results[f"ACC-{class_name}"] == pytest.approx(expected["ACC"][c])
    # "boat" never occurs in the ground truth: NaN, and left out of the means
    assert np.isnan(results["IoU-boat"]) and np.isnan(results["ACC-boat"])
    assert not any(k.startswith("BoundaryIoU") for k in results)  # off by default
    # car: 2 ground-truth pixels, one predicted, and that one right
    assert results["IoU-car"] == pytest.approx(100 * 1 / 2)


def test_perfect_prediction_and_distributed_single_process(dataset):
    name, gt = dataset
    evaluator = SemSegEvaluator(name)  # distributed=True in one process
    evaluator.reset()
    for i, labels in enumerate(gt):
        pred = np.where(labels == IGNORE, 3, labels)  # anything on ignored pixels
        evaluator.process([{"file_name": f"img_{i}.jpg"}], [{"sem_seg": _logits(pred.astype(np.int64), 4)}])
    results = evaluator.evaluate()["sem_seg"]
    for key in ("mIoU", "fwIoU", "mACC", "pACC"):
        assert results[key] == pytest.approx(100.0)


def test_json_predictions_use_dataset_ids(dataset, register_dataset, tmp_path):
    _, gt = dataset
    from detectron2.data import DatasetCatalog

    records = DatasetCatalog.get(dataset[0])
    name = register_dataset(
        records,
        stuff_classes=["sky", "road", "car", "boat"],
        ignore_label=IGNORE,
        stuff_dataset_id_to_contiguous_id={10: 0, 20: 1, 30: 2, 40: 3},
    )
    out = tmp_path / "out"
    _run(SemSegEvaluator(name, output_dir=str(out)))
    entries = json.loads((out / "sem_seg_predictions.json").read_text())
    first = [e for e in entries if e["file_name"] == "img_0.jpg"]
    assert sorted(e["category_id"] for e in first) == [10, 20, 30, 40]
    road = next(e for e in first if e["category_id"] == 20)
    rle = dict(road["segmentation"], counts=road["segmentation"]["counts"].encode())
    np.testing.assert_array_equal(mask_util.decode(rle), (PREDICTIONS[0] == 1).astype(np.uint8))
    assert torch.load(out / "sem_seg_evaluation.pth", weights_only=False)["mIoU"] > 0


def test_boundary_iou_when_enabled(dataset):
    name, _ = dataset
    results = _run(SemSegEvaluator(name, compute_boundary_iou=True))
    for class_name in ("sky", "road", "car"):
        b_iou = results[f"BoundaryIoU-{class_name}"]
        assert 0 <= b_iou <= 100
        assert results[f"min(IoU, B-Iou)-{class_name}"] == pytest.approx(min(b_iou, results[f"IoU-{class_name}"]))


def test_boundary_iou_of_a_square():
    from detectron2.evaluation.sem_seg_evaluation import _mask_to_boundary

    mask = np.zeros((100, 100), dtype=bool)
    mask[20:80, 20:80] = True
    band = _mask_to_boundary(mask)  # dilation: round(0.02 * 141.4) = 3 pixels
    inner = np.zeros_like(mask)
    inner[23:77, 23:77] = True
    np.testing.assert_array_equal(band, mask & ~inner)


def test_bad_ground_truth_is_reported(dataset):
    name, _ = dataset
    evaluator = SemSegEvaluator(name)
    evaluator.reset()
    with pytest.raises(ValueError, match="img_0.jpg"):
        evaluator.process([{"file_name": "img_0.jpg"}], [{"sem_seg": torch.zeros(4, 5, 5)}])
    evaluator = SemSegEvaluator(name, sem_seg_loading_fn=lambda path, dtype: np.full((3, 4), 9))
    evaluator.reset()
    with pytest.raises(ValueError, match="outside"):
        evaluator.process([{"file_name": "img_0.jpg"}], [{"sem_seg": torch.zeros(4, 3, 4)}])
    with pytest.raises(ValueError, match="num_classes"):
        SemSegEvaluator(name, num_classes=7)


def test_load_image_into_numpy_array(tmp_path):
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(labels).save(tmp_path / "l.png")
    array = load_image_into_numpy_array(str(tmp_path / "l.png"), dtype=int)
    assert array.dtype == np.int_ and array.tolist() == labels.tolist()
    copied = load_image_into_numpy_array(str(tmp_path / "l.png"), copy=True)
    copied[0, 0] = 200  # a writable copy
    assert copied.dtype == np.uint8

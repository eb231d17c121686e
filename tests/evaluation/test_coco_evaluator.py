"""COCOEvaluator on a generated dataset (boxes, polygon masks, crowd RLEs, keypoints, several
categories, tied scores): the C++ path and pycocotools give the same numbers, and the
evaluator's json / proposal / category-id handling behaves as upstream's."""
import contextlib
import io
import json
import os
import pickle

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation.coco_evaluation import _evaluate_box_proposals, instances_to_coco_json
from detectron2.structures import Boxes, Instances

SIZE = 160  # areas then span COCO's small (<32^2), medium and large (>96^2) ranges
CATEGORY_IDS = (1, 3, 7)  # not contiguous: the evaluator maps classes 0..2 back to these
CLASS_NAMES = ("circle", "square", "star")
NUM_KEYPOINTS = 4
SIGMAS = (0.3, 0.5, 0.5, 0.7)


def _random_box(rng):
    if rng.random() < 0.2:
        w, h = rng.uniform(110, 155, size=2)  # large
    else:
        w, h = np.exp(rng.uniform(np.log(4), np.log(100), size=2))
    x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
    return [float(x), float(y), float(w), float(h)]


def _box_mask(box):
    x, y, w, h = box
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    x0, y0 = int(np.clip(x, 0, SIZE - 1)), int(np.clip(y, 0, SIZE - 1))
    mask[y0 : max(y0 + 1, int(y + h)), x0 : max(x0 + 1, int(x + w))] = 1
    return mask


def _keypoints(rng, box):
    x, y, w, h = box
    points = []
    for _ in range(NUM_KEYPOINTS):
        v = int(rng.integers(0, 3))
        px, py = (int(x + rng.uniform(0, w)), int(y + rng.uniform(0, h))) if v else (0, 0)
        points += [px, py, v]
    return points


def generate(seed, num_images=20):
    """(COCO ground-truth dict, per-image predicted Instances)."""
    rng = np.random.default_rng(seed)
    images, annotations, predictions = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": SIZE, "height": SIZE, "file_name": f"{image_id}.png"})
        boxes, scores, classes, masks, kpts = [], [], [], [], []
        for _ in range(rng.integers(0, 6)):
            box, cat = _random_box(rng), int(rng.integers(0, len(CATEGORY_IDS)))
            crowd = rng.random() < 0.1
            x, y, w, h = box
            ann = {"id": len(annotations) + 1, "image_id": image_id, "category_id": CATEGORY_IDS[cat], "bbox": box}
            if crowd:
                rle = mask_util.encode(np.asfortranarray(_box_mask(box)))
                ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
                ann.update(iscrowd=1, keypoints=[0] * 3 * NUM_KEYPOINTS, num_keypoints=0)
            else:
                polygon = [x, y, x + w, y, x + w * 0.8, y + h, x, y + h * 0.7]
                ann["segmentation"] = [polygon]
                points = _keypoints(rng, box)
                ann.update(iscrowd=0, keypoints=points, num_keypoints=sum(v > 0 for v in points[2::3]))
            rles = mask_util.frPyObjects(ann["segmentation"], SIZE, SIZE) if not crowd else [ann["segmentation"]]
            ann["area"] = float(mask_util.area(mask_util.merge(rles)))
            annotations.append(ann)
            if rng.random() < 0.85:  # a detection of this object, jittered
                jitter = [x + rng.normal(0, 0.05 * w), y + rng.normal(0, 0.05 * h), w * np.exp(rng.normal(0, 0.05)), h * np.exp(rng.normal(0, 0.05))]
                boxes.append(jitter)
                classes.append(cat if rng.random() < 0.9 else int(rng.integers(0, len(CATEGORY_IDS))))
                gt_points = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
                # predictions are continuous coordinates: pixel index + 0.5
                kpts.append(np.concatenate([gt_points[:, :2] + 0.5 + rng.normal(0, 1.5, (NUM_KEYPOINTS, 2)), rng.random((NUM_KEYPOINTS, 1))], 1))
        for _ in range(rng.integers(0, 4)):  # false positives
            boxes.append(_random_box(rng))
            classes.append(int(rng.integers(0, len(CATEGORY_IDS))))
            kpts.append(np.concatenate([rng.uniform(0, SIZE, (NUM_KEYPOINTS, 2)), rng.random((NUM_KEYPOINTS, 1))], 1))
        scores = (rng.integers(1, 6, size=len(boxes)) / 5).tolist()  # coarse: many ties
        masks = [_box_mask(b) for b in boxes]
        instances = Instances((SIZE, SIZE))
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in boxes]
        instances.pred_boxes = Boxes(torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4))
        instances.scores = torch.tensor(scores, dtype=torch.float32)
        instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
        instances.pred_masks = torch.from_numpy(np.array(masks, dtype=bool).reshape(-1, SIZE, SIZE))
        instances.pred_keypoints = torch.tensor(np.array(kpts), dtype=torch.float32).reshape(-1, NUM_KEYPOINTS, 3)
        predictions.append(instances)
    categories = [{"id": i, "name": n} for i, n in zip(CATEGORY_IDS, CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}, predictions


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    gt, predictions = generate(seed=0)
    path = tmp_path_factory.mktemp("coco") / "gt.json"
    path.write_text(json.dumps(gt))
    return str(path), predictions


@pytest.fixture
def coco_dataset(generated, register_dataset):
    json_file, predictions = generated
    name = register_dataset(
        json_file=json_file,
        thing_classes=list(CLASS_NAMES),
        thing_dataset_id_to_contiguous_id={k: i for i, k in enumerate(CATEGORY_IDS)},
    )
    return name, predictions


def _run(evaluator, predictions, **evaluate_kwargs):
    evaluator.reset()
    for image_id, instances in enumerate(predictions, start=1):
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    return evaluator.evaluate(**evaluate_kwargs)


def _pycocotools_stats(json_file, results_file, iou_type, max_dets=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(json_file)
        results = json.load(open(results_file))
        if iou_type == "segm":
            for r in results:
                r.pop("bbox")
        coco_eval = COCOeval(gt, gt.loadRes(results), iou_type)
        if iou_type == "keypoints":
            coco_eval.params.kpt_oks_sigmas = np.array(SIGMAS)
        elif max_dets is not None:
            coco_eval.params.maxDets = max_dets
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def test_fast_path_equals_pycocotools(coco_dataset, generated, tmp_path):
    name, predictions = coco_dataset
    fast_dir, slow_dir = tmp_path / "fast", tmp_path / "slow"
    fast_evaluator = COCOEvaluator(name, output_dir=str(fast_dir), kpt_oks_sigmas=SIGMAS)
    assert fast_evaluator._use_fast_impl  # the C++ core is built in this tree
    fast = _run(fast_evaluator, predictions)
    slow = _run(COCOEvaluator(name, output_dir=str(slow_dir), kpt_oks_sigmas=SIGMAS, use_fast_impl=False), predictions)
    assert set(fast) == {"bbox", "segm", "keypoints"}
    assert set(fast["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"} | {f"AP-{n}" for n in CLASS_NAMES}
    assert set(fast["keypoints"]) == {"AP", "AP50", "AP75", "APm", "APl"} | {f"AP-{n}" for n in CLASS_NAMES}
    for task in fast:
        assert fast[task].keys() == slow[task].keys()
        for metric, value in fast[task].items():
            assert value == pytest.approx(slow[task][metric], abs=1e-6, nan_ok=True), (task, metric)

    # ... and equal what pycocotools computes itself from the written results file.
    json_file, _ = generated
    results_file = fast_dir / "coco_instances_results.json"
    for task, metrics in (("bbox", ["AP", "AP50", "AP75", "APs", "APm", "APl"]), ("segm", None), ("keypoints", ["AP", "AP50", "AP75", "APm", "APl"])):
        metrics = metrics or ["AP", "AP50", "AP75", "APs", "APm", "APl"]
        stats = _pycocotools_stats(json_file, results_file, task).stats
        for idx, metric in enumerate(metrics):
            expected = stats[idx] * 100 if stats[idx] >= 0 else float("nan")
            assert fast[task][metric] == pytest.approx(expected, abs=1e-6, nan_ok=True), (task, metric)
    # The numbers are not trivial: a good but imperfect detector.
    for task in ("bbox", "segm", "keypoints"):
        assert 10 < fast[task]["AP"] < 95, task
        assert all(np.isfinite(v) for k, v in fast[task].items() if k != "APs" or task != "keypoints")


def test_per_category_ap_from_precision_table(coco_dataset, generated, tmp_path):
    name, predictions = coco_dataset
    results = _run(COCOEvaluator(name, tasks=("bbox",), output_dir=str(tmp_path)), predictions)
    assert set(results) == {"bbox"}
    coco_eval = _pycocotools_stats(generated[0], tmp_path / "coco_instances_results.json", "bbox")
    for k, class_name in enumerate(CLASS_NAMES):
        precision = coco_eval.eval["precision"][:, :, k, 0, -1]
        expected = 100 * precision[precision > -1].mean()
        assert results["bbox"][f"AP-{class_name}"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("use_fast_impl", [True, False])
def test_max_dets_per_image(register_dataset, tmp_path, use_fast_impl):
    # 150 detections per image; the true ones rank 101st to 120th by score.
    rng = np.random.default_rng(3)
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
    predictions = []
    for image_id in (1, 2):
        gt["images"].append({"id": image_id, "width": SIZE, "height": SIZE})
        truth = [_random_box(rng) for _ in range(20)]
        for box in truth:
            ann = {"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": 1, "bbox": box}
            gt["annotations"].append(dict(ann, area=box[2] * box[3], iscrowd=0))
        boxes = [[x + 200, y + 200, w, h] for x, y, w, h in (_random_box(rng) for _ in range(100))] + truth
        boxes += [[x + 200, y + 200, w, h] for x, y, w, h in (_random_box(rng) for _ in range(30))]
        instances = Instances((SIZE, SIZE))
        instances.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes]))
        instances.scores = torch.linspace(1.0, 0.01, len(boxes))
        instances.pred_classes = torch.zeros(len(boxes), dtype=torch.int64)
        predictions.append(instances)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    name = register_dataset(json_file=str(path), thing_classes=["a"], thing_dataset_id_to_contiguous_id={1: 0})

    default = _run(COCOEvaluator(name, tasks=("bbox",), use_fast_impl=use_fast_impl), predictions)["bbox"]
    assert default["AP"] == 0.0  # the true boxes are beyond the 100 best
    evaluator = COCOEvaluator(
        name, tasks=("bbox",), output_dir=str(tmp_path), max_dets_per_image=200, use_fast_impl=use_fast_impl
    )
    results = _run(evaluator, predictions)["bbox"]
    coco_eval = _pycocotools_stats(str(path), tmp_path / "coco_instances_results.json", "bbox", max_dets=[1, 10, 200])
    # AP summarised at the last maxDets (200), not at pycocotools' hard-coded 100
    precision = coco_eval.eval["precision"][:, :, :, 0, 2]
    assert results["AP"] == pytest.approx(100 * precision[precision > -1].mean(), abs=1e-6)
    assert 10 < results["AP"] < 100


def test_img_ids_restrict_the_evaluation(coco_dataset, generated, tmp_path):
    name, predictions = coco_dataset
    evaluator = COCOEvaluator(name, tasks=("bbox",), output_dir=str(tmp_path))
    subset = _run(evaluator, predictions, img_ids=[1, 2, 3, 4])["bbox"]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(generated[0])
        coco_eval = COCOeval(gt, gt.loadRes(str(tmp_path / "coco_instances_results.json")), "bbox")
        coco_eval.params.imgIds = [1, 2, 3, 4]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    assert subset["AP"] == pytest.approx(100 * coco_eval.stats[0], abs=1e-6)
    assert subset["AP"] != pytest.approx(_run(evaluator, predictions)["bbox"]["AP"])


def test_results_json_is_written_with_dataset_category_ids(coco_dataset, tmp_path):
    name, predictions = coco_dataset
    evaluator = COCOEvaluator(name, tasks=("bbox",), output_dir=str(tmp_path))
    _run(evaluator, predictions)
    results = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert {r["category_id"] for r in results} <= set(CATEGORY_IDS)
    assert len(results) == sum(len(p) for p in predictions)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # atomic writes leave no temporaries
    saved = torch.load(tmp_path / "instances_predictions.pth", weights_only=False)
    assert [p["image_id"] for p in saved] == list(range(1, len(predictions) + 1))
    # evaluating twice gives the same numbers (the kept predictions are not remapped twice)
    assert evaluator.evaluate() == evaluator.evaluate()


def test_fallback_to_pycocotools_without_the_cpp_core(coco_dataset, monkeypatch):
    import detectron2.layers._ops as ops

    def missing():
        raise ImportError("no _C")

    monkeypatch.setattr(ops, "load_C", missing)
    name, predictions = coco_dataset
    evaluator = COCOEvaluator(name, tasks=("bbox",))
    assert evaluator._use_fast_impl is False
    assert np.isfinite(_run(evaluator, predictions)["bbox"]["AP"])


def test_perfect_predictions_give_100(register_dataset, tmp_path):
    gt, _ = generate(seed=1, num_images=6)
    gt["annotations"] = [a for a in gt["annotations"] if not a["iscrowd"]]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    name = register_dataset(json_file=str(path), thing_classes=list(CLASS_NAMES), thing_dataset_id_to_contiguous_id={k: i for i, k in enumerate(CATEGORY_IDS)})
    evaluator = COCOEvaluator(name, tasks=("bbox",))
    evaluator.reset()
    for image in gt["images"]:
        anns = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        instances = Instances((SIZE, SIZE))
        instances.pred_boxes = Boxes(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]).reshape(-1, 4))
        instances.scores = torch.ones(len(anns))
        instances.pred_classes = torch.tensor([CATEGORY_IDS.index(a["category_id"]) for a in anns], dtype=torch.int64)
        evaluator.process([{"image_id": image["id"]}], [{"instances": instances}])
    results = evaluator.evaluate()["bbox"]
    for metric in ("AP", "AP50", "AP75"):
        assert results[metric] == pytest.approx(100.0)


def test_instances_to_coco_json_conventions():
    instances = Instances((4, 5))
    instances.pred_boxes = Boxes(torch.tensor([[1.0, 1.0, 3.0, 4.0]]))
    instances.scores = torch.tensor([0.5])
    instances.pred_classes = torch.tensor([2])
    mask = torch.zeros(1, 4, 5, dtype=torch.bool)
    mask[0, 1:3, 2:4] = True
    instances.pred_masks = mask
    keypoints = torch.tensor([[[2.5, 3.5, 0.9], [1.0, 1.0, 0.1]]])
    instances.pred_keypoints = keypoints
    (result,) = instances_to_coco_json(instances, 7)
    assert result["image_id"] == 7 and result["category_id"] == 2 and result["score"] == 0.5
    assert result["bbox"] == [1.0, 1.0, 2.0, 3.0]  # XYWH
    assert result["keypoints"] == pytest.approx([2.0, 3.0, 0.9, 0.5, 0.5, 0.1])  # -0.5 on x, y
    assert keypoints[0, 0, 0] == 2.5  # the caller's tensor is unchanged
    assert isinstance(result["segmentation"]["counts"], str)
    decoded = mask_util.decode({"size": result["segmentation"]["size"], "counts": result["segmentation"]["counts"].encode()})
    np.testing.assert_array_equal(decoded, mask[0].numpy())
    json.dumps(result)
    assert instances_to_coco_json(instances[:0], 7) == []


def test_no_predictions_and_empty_instances(coco_dataset, caplog):
    name, predictions = coco_dataset
    evaluator = COCOEvaluator(name)
    evaluator.reset()
    assert evaluator.evaluate() == {}  # nothing processed
    results = _run(evaluator, [p[:0] for p in predictions])
    assert set(results) == {"bbox"} and all(np.isnan(v) for v in results["bbox"].values())


def test_class_out_of_range_is_an_error(coco_dataset):
    name, predictions = coco_dataset
    bad = predictions[0][:1]
    bad.pred_classes = torch.tensor([len(CATEGORY_IDS)])
    evaluator = COCOEvaluator(name, tasks=("bbox",))
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [{"instances": bad}])
    with pytest.raises(ValueError, match="num_classes"):
        evaluator.evaluate()


def test_bad_arguments(coco_dataset, register_dataset):
    name, predictions = coco_dataset
    with pytest.raises(ValueError, match="tasks"):
        COCOEvaluator(name, tasks=("boxes",))
    with pytest.raises(ValueError, match="output_dir"):
        COCOEvaluator(register_dataset(thing_classes=["a"]))
    evaluator = COCOEvaluator(name, tasks=("keypoints",), kpt_oks_sigmas=(0.5,) * (NUM_KEYPOINTS + 1))
    with pytest.raises(ValueError, match="keypoints"):
        _run(evaluator, predictions)


def test_dataset_without_annotations_only_writes_results(generated, register_dataset, tmp_path):
    json_file, predictions = generated
    gt = json.load(open(json_file))
    del gt["annotations"]
    path = tmp_path / "test_set.json"
    path.write_text(json.dumps(gt))
    name = register_dataset(json_file=str(path), thing_classes=list(CLASS_NAMES))
    assert _run(COCOEvaluator(name, output_dir=str(tmp_path)), predictions) == {}
    assert (tmp_path / "coco_instances_results.json").exists()


def _proposals(boxes, logits):
    proposals = Instances((SIZE, SIZE))
    proposals.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    proposals.objectness_logits = torch.tensor(logits, dtype=torch.float32)
    return proposals


def test_box_proposals_recall(register_dataset, tmp_path):
    gt = {
        "images": [{"id": 1, "width": SIZE, "height": SIZE}, {"id": 2, "width": SIZE, "height": SIZE}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 50, 50], "area": 2500, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 120, 100], "area": 12000, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 1},
        ],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    name = register_dataset(json_file=str(path), thing_classes=["a"])
    evaluator = COCOEvaluator(name, output_dir=str(tmp_path))
    evaluator.reset()
    # image 1: exact small box and a medium box at IoU 0.81; image 2: the large box missed.
    evaluator.process(
        [{"image_id": 1}, {"image_id": 2}],
        [
            {"proposals": _proposals([[0, 0, 10, 10], [20, 20, 65, 65], [100, 100, 110, 110]], [3.0, 2.0, 1.0])},
            {"proposals": _proposals([[60, 60, 70, 70]], [1.0])},
        ],
    )
    results = evaluator.evaluate()["box_proposals"]
    thresholds = np.arange(0.5, 0.951, 0.05)
    medium = (45 * 45) / (50 * 50)
    assert results["ARs@100"] == pytest.approx(100.0)
    assert results["ARm@100"] == pytest.approx(100 * np.mean(thresholds <= medium + 1e-6))
    assert results["ARl@100"] == pytest.approx(0.0)
    assert results["AR@100"] == pytest.approx(100 * np.mean((1 + (thresholds <= medium + 1e-6)) / 3))
    assert results["AR@1000"] == results["AR@100"]
    saved = pickle.load(open(tmp_path / "box_proposals.pkl", "rb"))
    assert saved["ids"] == [1, 2] and saved["bbox_mode"] == 0


def test_box_proposals_limit(register_dataset, tmp_path):
    gt = {
        "images": [{"id": 1, "width": SIZE, "height": SIZE}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    # the only matching proposal has the lowest objectness: outside the top 1
    predictions = [{"image_id": 1, "proposals": _proposals([[50, 50, 60, 60], [0, 0, 10, 10]], [2.0, 1.0])}]
    assert _evaluate_box_proposals(predictions, coco, limit=1)["ar"].item() == 0.0
    assert _evaluate_box_proposals(predictions, coco, limit=2)["ar"].item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="area"):
        _evaluate_box_proposals(predictions, coco, area="huge")

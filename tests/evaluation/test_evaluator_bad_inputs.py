"""COCOEvaluator: a category id the dataset lacks and a task without its predictions are
clear errors, not silently ignored; output files follow the umask (issue 15)."""
import json
import os
import stat

import pytest
import torch

from detectron2.evaluation import COCOEvaluator
from detectron2.layers._checks import BadInputError
from detectron2.structures import Boxes, Instances

CATS = (1, 3, 7)


def _dataset(tmp_path, register_dataset, mapped: bool) -> str:
    gt = {
        "images": [{"id": 1, "width": 20, "height": 20, "file_name": "1.png"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0,
                         "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]}],
        "categories": [{"id": c, "name": f"c{c}"} for c in CATS],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    meta = {"json_file": str(path), "thing_classes": [f"c{c}" for c in CATS]}
    if mapped:
        meta["thing_dataset_id_to_contiguous_id"] = {c: i for i, c in enumerate(CATS)}
    return register_dataset(**meta)


def _instances(classes, masks: bool = False) -> Instances:
    n = len(classes)
    inst = Instances((20, 20))
    inst.pred_boxes = Boxes(torch.tensor([[2.0, 2.0, 10.0, 10.0]] * n).reshape(-1, 4))
    inst.scores = torch.linspace(0.9, 0.5, n)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    if masks:
        m = torch.zeros(n, 20, 20, dtype=torch.bool)
        m[:, 2:10, 2:10] = True
        inst.pred_masks = m
    return inst


def _evaluate(name, instances, **kw):
    evaluator = COCOEvaluator(name, **kw)
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [{"instances": instances}])
    return evaluator.evaluate()


@pytest.mark.parametrize("cls", [3, -1, 100])
def test_class_outside_the_mapped_dataset(tmp_path, register_dataset, cls):
    name = _dataset(tmp_path, register_dataset, mapped=True)
    with pytest.raises(BadInputError, match=f"class {cls}.*only has 3") as err:
        _evaluate(name, _instances([0, cls]), tasks=("bbox",))
    assert isinstance(err.value, AssertionError)  # upstream asserted


@pytest.mark.parametrize("cls", [0, 2, 4, 99])
def test_category_id_outside_an_unmapped_dataset(tmp_path, register_dataset, cls):
    name = _dataset(tmp_path, register_dataset, mapped=False)
    with pytest.raises(BadInputError, match=rf"category ids \[{cls}\].*\[1, 3, 7\]"):
        _evaluate(name, _instances([3, cls]), tasks=("bbox",))


def test_unmapped_dataset_with_its_own_ids_evaluates(tmp_path, register_dataset):
    name = _dataset(tmp_path, register_dataset, mapped=False)
    assert _evaluate(name, _instances([3]), tasks=("bbox",))["bbox"]["AP"] == pytest.approx(100.0)


@pytest.mark.parametrize("tasks", [("segm",), ("bbox", "segm"), ("keypoints",)])
def test_task_without_its_predictions(tmp_path, register_dataset, tasks):
    name = _dataset(tmp_path, register_dataset, mapped=True)
    missing = tasks[-1]
    with pytest.raises(BadInputError, match=f"task '{missing}' needs predictions with pred_") as err:
        _evaluate(name, _instances([1, 1]), tasks=tasks)
    assert "\n" not in str(err.value)


def test_segm_with_masks_evaluates(tmp_path, register_dataset):
    name = _dataset(tmp_path, register_dataset, mapped=True)
    result = _evaluate(name, _instances([1], masks=True), tasks=("segm",))
    assert result["segm"]["AP"] == pytest.approx(100.0)


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_output_files_follow_the_umask(tmp_path, register_dataset, umask):
    name = _dataset(tmp_path, register_dataset, mapped=True)
    out = tmp_path / "out"
    old = os.umask(umask)
    try:
        _evaluate(name, _instances([1]), tasks=("bbox",), output_dir=str(out))
    finally:
        os.umask(old)
    files = sorted(os.listdir(out))
    assert "coco_instances_results.json" in files and "instances_predictions.pth" in files
    for f in files:
        assert stat.S_IMODE(os.stat(out / f).st_mode) == 0o666 & ~umask, f

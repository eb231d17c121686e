"""COCOEvaluator.evaluate() with the C++ COCOeval core vs pycocotools' COCOeval, for box and
mask AP on a large generated dataset (2000 images x 20 detections by default).

evaluate() is timed end to end: loading the results, IoUs (pycocotools' own in both),
matching, accumulation, the summary and the per-category table. The numbers of both
paths are checked to be equal first.

    python benchmarks/bench_coco_evaluator.py [--quick] [--iters N]
"""
import contextlib
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_util
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from common import describe_device, parse_args, print_table  # noqa: E402

from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.evaluation import COCOEvaluator  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402

HEIGHT, WIDTH = 240, 320
NUM_CATEGORIES = 10


def _boxes(rng, n):
    wh = np.exp(rng.uniform(np.log(6), np.log(200), size=(n, 2)))
    xy = rng.uniform(0, 1, size=(n, 2)) * (np.array([WIDTH, HEIGHT]) - wh).clip(1)
    return np.concatenate([xy, wh], 1)


def _masks(boxes_xywh):
    """Box-shaped binary masks (N, H, W)."""
    masks = np.zeros((len(boxes_xywh), HEIGHT, WIDTH), dtype=bool)
    for k, (x, y, w, h) in enumerate(boxes_xywh.astype(int)):
        masks[k, y : y + max(h, 1), x : x + max(w, 1)] = True
    return masks


def generate(num_images, dets_per_image, seed=0):
    """A COCO ground-truth dict (about 7 objects an image, some crowd) and a function that
    yields each image's predicted Instances (noisy copies of the objects plus random
    boxes; box-shaped masks)."""
    rng = np.random.default_rng(seed)
    images, annotations, per_image = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": WIDTH, "height": HEIGHT})
        gt = _boxes(rng, int(rng.integers(1, 14)))
        cats = rng.integers(1, NUM_CATEGORIES + 1, size=len(gt))
        for box, cat, mask in zip(gt, cats, _masks(gt)):
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(cat), "bbox": box.tolist(),
                "area": float(mask_util.area(rle)), "iscrowd": int(rng.random() < 0.03),
                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
            })
        src = rng.integers(0, len(gt), size=dets_per_image)
        near = rng.random(dets_per_image) < 0.6
        jitter = rng.normal(0, 0.06, size=(dets_per_image, 4)) * np.tile(gt[src][:, 2:], 2)
        boxes = np.where(near[:, None], gt[src] + jitter, _boxes(rng, dets_per_image))
        classes = np.where(near, cats[src], rng.integers(1, NUM_CATEGORIES + 1, size=dets_per_image)) - 1
        per_image.append((image_id, boxes, classes, np.round(rng.random(dets_per_image), 3)))
    categories = [{"id": c, "name": f"c{c}"} for c in range(1, NUM_CATEGORIES + 1)]

    def predictions():
        for image_id, boxes, classes, scores in per_image:
            instances = Instances((HEIGHT, WIDTH))
            xyxy = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
            instances.pred_boxes = Boxes(torch.tensor(xyxy, dtype=torch.float32))
            instances.scores = torch.tensor(scores, dtype=torch.float32)
            instances.pred_classes = torch.tensor(classes, dtype=torch.int64)
            instances.pred_masks = torch.from_numpy(_masks(boxes))
            yield image_id, instances

    return {"images": images, "annotations": annotations, "categories": categories}, predictions


def _time_evaluate(evaluator, iters):
    """Median seconds of ``evaluator.evaluate()`` and its (last) results."""
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        results = evaluator.evaluate()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), results


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    num_images, dets = (100, 20) if args.quick else (2000, 20)
    iters = min(args.iters, 3)  # pycocotools takes many seconds per run
    logging.disable(logging.WARNING)  # the evaluators' tables and pycocotools' prints are not the point
    print(f"COCOEvaluator.evaluate() on {describe_device('cpu')}, {num_images} images x {dets} detections, "
          f"{NUM_CATEGORIES} categories, median of {iters} run(s); ratio < 1: C++ core faster\n")
    gt, predictions = generate(num_images, dets)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        json_file = os.path.join(tmp, "gt.json")
        with open(json_file, "w") as f:
            json.dump(gt, f)
        name = "bench_coco_evaluator"
        MetadataCatalog.get(name).set(
            json_file=json_file,
            thing_classes=[c["name"] for c in gt["categories"]],
            thing_dataset_id_to_contiguous_id={c["id"]: c["id"] - 1 for c in gt["categories"]},
        )
        for task in ("bbox", "segm"):
            evaluators = {
                impl: COCOEvaluator(name, tasks=(task,), distributed=False, use_fast_impl=impl == "C++")
                for impl in ("C++", "pycocotools")
            }
            for evaluator in evaluators.values():
                evaluator.reset()
            for image_id, instances in predictions():
                for evaluator in evaluators.values():
                    evaluator.process([{"image_id": image_id}], [{"instances": instances}])
            results, times = {}, {}
            for impl, evaluator in evaluators.items():
                with contextlib.redirect_stdout(io.StringIO()):
                    times[impl], results[impl] = _time_evaluate(evaluator, iters)
                results[impl] = results[impl][task]
            ours, peer = results["C++"], results["pycocotools"]
            same = all(np.isclose(ours[k], peer[k], atol=1e-6, equal_nan=True) for k in ours)
            rows.append([task, num_images, dets, times["C++"], times["pycocotools"], times["C++"] / times["pycocotools"],
                         "yes" if same else "NO", round(ours["AP"], 3)])
    print_table(rows, ["task", "images", "dets/image", "C++ core (s)", "pycocotools (s)", "ratio ours/peer", "same metrics", "AP"])


if __name__ == "__main__":
    main()

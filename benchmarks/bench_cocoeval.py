"""COCOeval_opt (C++ matching and accumulation) vs pycocotools' COCOeval, bbox evaluation.

Both evaluators run on the same generated COCO-style dataset (80 categories, up to 100
detections per image as in Mask R-CNN's test output); the results are checked to be
identical before timing. evaluate() includes pycocotools' IoU computation, which both
share; accumulate() is entirely C++ in ours.

    python benchmarks/bench_cocoeval.py [--quick] [--iters N]
"""
import contextlib
import io
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from common import describe_device, parse_args, print_table, time_fn  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

from detectron2.evaluation.fast_eval_api import COCOeval_opt  # noqa: E402


def generate(num_images: int, num_categories: int, dets_per_image: int, seed: int = 0):
    """Ground truth (about 7 objects an image) and detections: noisy copies of the objects
    plus random boxes, scores rounded to 3 decimals as in real result files."""
    rng = np.random.default_rng(seed)
    size = 640
    images = [{"id": i + 1, "width": size, "height": size} for i in range(num_images)]
    categories = [{"id": c + 1, "name": f"c{c + 1}"} for c in range(num_categories)]
    annotations, results = [], []
    for image in images:
        num_gt = int(rng.integers(1, 15))
        wh = np.exp(rng.uniform(np.log(8), np.log(400), size=(num_gt, 2)))
        xy = rng.uniform(0, size, size=(num_gt, 2)) - wh / 2
        cats = rng.integers(1, num_categories + 1, size=num_gt)
        for box, cat in zip(np.concatenate([xy, wh], 1).tolist(), cats.tolist()):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image["id"], "category_id": cat, "bbox": box,
                "area": box[2] * box[3], "iscrowd": int(rng.random() < 0.03),
            })
        # Detections: most near an object of the image, the rest anywhere, any category.
        src = rng.integers(0, num_gt, size=dets_per_image)
        near = rng.random(dets_per_image) < 0.6
        boxes = np.concatenate([xy[src], wh[src]], 1) * rng.normal(1, 0.1, size=(dets_per_image, 4))
        wh_rand = np.exp(rng.uniform(np.log(8), np.log(400), size=(dets_per_image, 2)))
        random_boxes = np.concatenate([rng.uniform(0, size, size=(dets_per_image, 2)), wh_rand], 1)
        boxes = np.where(near[:, None], boxes, random_boxes)
        det_cats = np.where(near, cats[src], rng.integers(1, num_categories + 1, size=dets_per_image))
        scores = np.round(rng.random(dets_per_image), 3)
        for box, cat, score in zip(boxes.tolist(), det_cats.tolist(), scores.tolist()):
            results.append({"image_id": image["id"], "category_id": cat, "bbox": box, "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "categories": categories, "annotations": annotations}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
    return coco_gt, coco_dt


def bench_case(num_images, num_categories, dets_per_image, iters):
    coco_gt, coco_dt = generate(num_images, num_categories, dets_per_image)
    times = {}
    evaluators = {}
    for name, cls in (("ours", COCOeval_opt), ("pycocotools", COCOeval)):
        evaluator = cls(coco_gt, coco_dt, "bbox")
        with contextlib.redirect_stdout(io.StringIO()):
            times[name, "evaluate"] = time_fn(evaluator.evaluate, "cpu", warmup=0, iters=iters)
            times[name, "accumulate"] = time_fn(evaluator.accumulate, "cpu", warmup=0, iters=iters)
        evaluators[name] = evaluator
    for key in ("precision", "recall", "scores"):
        assert np.array_equal(evaluators["ours"].eval[key], evaluators["pycocotools"].eval[key]), key

    case = f"{num_images} img x {num_categories} cat x {dets_per_image} det"
    rows = []
    for stage in ("evaluate", "accumulate"):
        ours, peer = times["ours", stage], times["pycocotools", stage]
        rows.append([case, stage, ours, peer, ours / peer])
    ours = times["ours", "evaluate"] + times["ours", "accumulate"]
    peer = times["pycocotools", "evaluate"] + times["pycocotools", "accumulate"]
    rows.append([case, "evaluate+accumulate", ours, peer, ours / peer])
    return rows


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    cases = [(20, 10, 20)] if args.quick else [(500, 80, 100)]
    # pycocotools takes seconds per large run: a few timed runs give a stable median.
    iters = min(args.iters, 3)
    print(f"COCO bbox evaluation on {describe_device('cpu')}, median of {iters} run(s); ratio < 1: ours faster")
    rows = []
    for case in cases:
        rows += bench_case(*case, iters=iters)
    print_table(rows, ["case", "stage", "ours ms", "pycocotools ms", "ratio ours/peer"])


if __name__ == "__main__":
    main()

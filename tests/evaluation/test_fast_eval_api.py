"""COCOeval_opt (C++ evaluate/accumulate) against pycocotools' COCOeval on random COCO-style
datasets: every table and every per-image matching must be identical."""
import contextlib
import copy
import io
from types import SimpleNamespace

import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.evaluation.fast_eval_api import COCOeval_opt
from detectron2.layers._ops import load_C

NUM_KEYPOINTS = 17
IMAGE_SIZE = 160  # areas then span COCO's small (<32^2), medium and large (>96^2) ranges


def _box(rng):
    w, h = np.exp(rng.uniform(np.log(3), np.log(150), size=2))
    x, y = rng.uniform(0, IMAGE_SIZE - w), rng.uniform(0, IMAGE_SIZE - h)
    return [float(x), float(y), float(w), float(h)]


def _jitter(rng, box, scale=0.15):
    x, y, w, h = box
    dx, dy = rng.normal(0, scale * w), rng.normal(0, scale * h)
    dw, dh = np.exp(rng.normal(0, scale, size=2))
    return [float(x + dx), float(y + dy), float(w * dw), float(h * dh)]


def _score(rng):
    # Coarse scores: many exact ties, which the stable sorts must order like numpy.
    return float(rng.integers(0, 8) / 8)


def _rle(box):
    x, y, w, h = box
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8, order="F")
    x0, y0 = int(np.clip(x, 0, IMAGE_SIZE - 1)), int(np.clip(y, 0, IMAGE_SIZE - 1))
    mask[y0 : max(y0 + 1, int(y + h)), x0 : max(x0 + 1, int(x + w))] = 1
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _polygon(box):
    x, y, w, h = box
    return [[x, y, x + w, y, x + w * 0.8, y + h, x, y + h * 0.6]]


def _keypoints(rng, box, visible: bool):
    x, y, w, h = box
    points = []
    for _ in range(NUM_KEYPOINTS):
        v = int(rng.integers(1, 3)) if visible and rng.random() < 0.8 else 0
        points += [float(x + rng.uniform(0, w)), float(y + rng.uniform(0, h)), v]
    return points


def _geometry(rng, iou_type, box, is_gt, is_crowd=False):
    if iou_type == "bbox":
        return {"bbox": box}
    if iou_type == "segm":
        segm = _rle(box) if (is_crowd or not is_gt) else _polygon(box)
        return {"segmentation": segm, "bbox": box} if is_gt else {"segmentation": segm}
    kpts = _keypoints(rng, box, visible=not is_crowd and rng.random() < 0.85)
    if is_gt:
        return {"keypoints": kpts, "num_keypoints": sum(v > 0 for v in kpts[2::3]), "bbox": box}
    return {"keypoints": [v if i % 3 != 2 else 1 for i, v in enumerate(kpts)]}


def random_coco(seed, iou_type="bbox", num_images=24, category_ids=(1, 3, 8, 11), crowded_image=False):
    """A COCO ground-truth dataset dict and a list of results over it.

    Covers: crowd regions, areas in every COCO range, tied scores, images without ground
    truth, images without detections, a category without ground truth, and (with
    `crowded_image`) more than 100 detections of one category in one image.
    """
    rng = np.random.default_rng(seed)
    images = [{"id": 100 + 7 * i, "width": IMAGE_SIZE, "height": IMAGE_SIZE} for i in range(num_images)]
    categories = [{"id": c, "name": f"c{c}"} for c in category_ids]
    if iou_type == "keypoints":
        for c in categories:
            c["keypoints"] = [f"k{i}" for i in range(NUM_KEYPOINTS)]
    gt_categories = list(category_ids[:-1])  # the last category never has ground truth
    annotations, results = [], []
    for n, image in enumerate(images):
        has_gt, has_dt = n % 6 != 1, n % 6 != 2
        for _ in range(int(rng.integers(0, 7)) if has_gt else 0):
            box, crowd = _box(rng), bool(rng.random() < 0.15)
            ann = {"id": len(annotations) + 1, "image_id": image["id"], "category_id": int(rng.choice(gt_categories))}
            ann.update(_geometry(rng, iou_type, box, is_gt=True, is_crowd=crowd))
            ann.update({"area": float(box[2] * box[3] * rng.uniform(0.6, 1.0)), "iscrowd": int(crowd)})
            annotations.append(ann)
            for _ in range(int(rng.integers(0, 4)) if has_dt else 0):
                det = {"image_id": image["id"], "category_id": ann["category_id"], "score": _score(rng)}
                det.update(_geometry(rng, iou_type, _jitter(rng, box), is_gt=False))
                if iou_type == "keypoints":  # near the true keypoints, so that OKS varies
                    noise = rng.normal(0, 0.08 * max(box[2], box[3]), size=(NUM_KEYPOINTS, 2))
                    xy = np.array(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2] + noise
                    det["keypoints"] = np.concatenate([xy, np.ones((NUM_KEYPOINTS, 1))], 1).ravel().tolist()
                results.append(det)
        for _ in range(int(rng.integers(0, 5)) if has_dt else 0):
            det = {"image_id": image["id"], "category_id": int(rng.choice(category_ids)), "score": _score(rng)}
            det.update(_geometry(rng, iou_type, _box(rng), is_gt=False))
            results.append(det)
    if crowded_image:
        image = images[0]
        for _ in range(130):
            det = {"image_id": image["id"], "category_id": category_ids[0], "score": float(rng.random())}
            det.update(_geometry(rng, iou_type, _box(rng), is_gt=False))
            results.append(det)
    dataset = {"images": images, "categories": categories, "annotations": annotations}
    return dataset, results


def run_eval(cls, dataset, results, iou_type, configure=None, accumulate_params=None):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(dataset)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        evaluator = cls(coco_gt, coco_dt, iou_type)
        if configure is not None:
            configure(evaluator.params)
        evaluator.evaluate()
        evaluator.accumulate(accumulate_params(evaluator.params) if accumulate_params else None)
        if configure is None and accumulate_params is None:  # summarize() needs default params
            evaluator.summarize()
    return evaluator


def assert_same_eval(expected, actual):
    for key in ("precision", "recall", "scores"):
        assert actual.eval[key].shape == expected.eval[key].shape, key
        np.testing.assert_array_equal(actual.eval[key], expected.eval[key], err_msg=key)
        np.testing.assert_allclose(actual.eval[key], expected.eval[key], rtol=0, atol=1e-6, err_msg=key)
    assert actual.eval["counts"] == expected.eval["counts"]
    assert actual.eval["params"] is actual.params or actual.eval["params"] is not None
    assert isinstance(actual.eval["date"], str) and len(actual.eval["date"]) == 19


def assert_same_eval_imgs(expected, actual):
    assert len(actual.evalImgs) == len(expected.evalImgs)
    for want, got in zip(expected.evalImgs, actual.evalImgs):
        if want is None:
            assert got is None
            continue
        assert got is not None
        for key in ("image_id", "category_id", "maxDet", "dtIds", "gtIds", "dtScores"):
            assert got[key] == want[key], key
        assert list(got["aRng"]) == list(want["aRng"])
        for key in ("dtMatches", "gtMatches", "gtIgnore", "dtIgnore"):
            assert np.shape(got[key]) == np.shape(want[key]), key
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def fraction_of_ties(results):
    scores = [r["score"] for r in results]
    return 1 - len(set(scores)) / len(scores)


@pytest.mark.parametrize("iou_type", ["bbox", "segm", "keypoints"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools(iou_type, seed):
    dataset, results = random_coco(seed, iou_type, crowded_image=seed == 2)
    assert fraction_of_ties(results) > 0.3
    assert any(a["iscrowd"] for a in dataset["annotations"])
    expected = run_eval(COCOeval, dataset, results, iou_type)
    actual = run_eval(COCOeval_opt, dataset, results, iou_type)
    assert_same_eval(expected, actual)
    np.testing.assert_array_equal(actual.stats, expected.stats)
    assert_same_eval_imgs(expected, actual)
    # The dataset exercises the interesting cases: missing categories and partial curves.
    assert (actual.eval["precision"] == -1).any() and (actual.eval["precision"] > 0).any()


@pytest.mark.parametrize("iou_type", ["bbox", "keypoints"])
def test_without_categories(iou_type):
    dataset, results = random_coco(3, iou_type)

    def no_cats(p):
        p.useCats = 0

    expected = run_eval(COCOeval, dataset, results, iou_type, configure=no_cats)
    actual = run_eval(COCOeval_opt, dataset, results, iou_type, configure=no_cats)
    assert actual.eval["precision"].shape[2] == 1
    assert_same_eval(expected, actual)
    assert_same_eval_imgs(expected, actual)


def test_custom_params_truncate_detections():
    dataset, results = random_coco(4, "bbox", crowded_image=True)

    def configure(p):
        p.maxDets = [5, 1, 3]  # unsorted on purpose: evaluate() sorts them
        p.iouThrs = np.array([0.3, 0.55, 0.9, 1.0])
        p.recThrs = np.linspace(0, 1, 11)
        p.areaRng = [[0, 1e5], [100, 2000], [2000, 1e5]]
        p.areaRngLbl = ["all", "a", "b"]
        p.imgIds = sorted(img["id"] for img in dataset["images"])[3:]
        p.catIds = [3, 1, 8]

    expected = run_eval(COCOeval, dataset, results, "bbox", configure=configure)
    actual = run_eval(COCOeval_opt, dataset, results, "bbox", configure=configure)
    assert actual.eval["counts"] == [4, 11, 3, 3, 3]
    assert_same_eval(expected, actual)
    assert_same_eval_imgs(expected, actual)


def test_accumulate_with_other_params():
    """accumulate(p) with params that select a subset of what evaluate() produced."""
    dataset, results = random_coco(5, "bbox")

    def subset(p):
        q = copy.deepcopy(p)
        q.catIds = [q.catIds[2], q.catIds[0], 99]
        q.areaRng = [q.areaRng[3], [1, 2], q.areaRng[0]]
        q.maxDets = [10, 7]
        q.imgIds = q.imgIds[5:]
        return q

    expected = run_eval(COCOeval, dataset, results, "bbox", accumulate_params=subset)
    actual = run_eval(COCOeval_opt, dataset, results, "bbox", accumulate_params=subset)
    assert_same_eval(expected, actual)


def test_eval_imgs_can_be_replaced_and_reaccumulated():
    dataset, results = random_coco(6, "bbox")
    expected = run_eval(COCOeval, dataset, results, "bbox")
    actual = run_eval(COCOeval_opt, dataset, results, "bbox")
    # pycocotools' own accumulate on the C++ matching gives the same tables.
    reference = copy.copy(actual)
    reference.evalImgs = list(actual.evalImgs)
    with contextlib.redirect_stdout(io.StringIO()):
        COCOeval.accumulate(reference)
    assert_same_eval(expected, reference)


def test_accumulate_before_evaluate_raises():
    dataset, results = random_coco(7, "bbox", num_images=3)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        evaluator = COCOeval_opt(coco_gt, coco_gt.loadRes(results), "bbox")
    with pytest.raises(RuntimeError, match="evaluate"):
        evaluator.accumulate()
    evaluator.params.iouType = "boxes"
    with pytest.raises(ValueError, match="iouType"):
        evaluator.evaluate()


# --- The C++ core directly ---------------------------------------------------------------


def _ann(id, score=0.0, area=100.0, is_crowd=False, ignore=False):
    return load_C().InstanceAnnotation(id, score, area, is_crowd, ignore)


AREAS = [[0.0, 1e10], [0.0, 50.0]]
THRESHOLDS = [0.5, 0.75]


def test_core_matching_by_hand():
    C = load_C()
    # One image, one category: gts 1 (regular) and 2 (crowd); detections 10, 11, 12 where
    # 11 and 12 tie on score (12 comes first in the input, so it stays first).
    gts = [_ann(1), _ann(2, area=400.0, is_crowd=True, ignore=True)]
    dts = [_ann(10, 0.9, 90.0), _ann(12, 0.5, 300.0), _ann(11, 0.5, 20.0)]
    # Rows follow the score order 10, 12, 11; columns the gt order 1, 2.
    ious = np.array([[0.8, 0.0], [0.6, 0.7], [0.0, 0.9]])
    out = C.COCOevalEvaluateImages(AREAS, 100, THRESHOLDS, [[ious]], [[gts]], [[dts]])
    assert len(out) == 2
    e = out[0]
    assert not e.is_empty
    assert e.detection_ids.tolist() == [10, 12, 11]
    assert e.ground_truth_ids.tolist() == [1, 2]
    assert e.ground_truth_ignores.tolist() == [False, True]
    # 10 takes gt 1; 12 cannot (taken) and falls back on the crowd; 11 also matches the crowd.
    assert e.detection_matches.tolist() == [[1, 2, 2], [1, 0, 2]]
    assert e.detection_ignores.tolist() == [[False, True, True], [False, False, True]]
    assert e.ground_truth_matches.tolist() == [[10, 11], [10, 11]]
    # Area range [0, 50]: gt 1 (area 100) is ignored too; unmatched 12 (area 300) is ignored.
    small = out[1]
    assert small.ground_truth_ignores.tolist() == [True, True]
    assert small.detection_ignores[1].tolist() == [True, True, True]

    params = SimpleNamespace(
        iouThrs=np.array(THRESHOLDS), recThrs=np.linspace(0, 1, 5), maxDets=[1, 100],
        areaRng=AREAS, catIds=[1], imgIds=[1], useCats=1,
    )
    result = C.COCOevalAccumulate(params, out)
    assert result["counts"] == [2, 5, 1, 2, 2] and result["params"] is params
    precision = np.asarray(result["precision"]).reshape(result["counts"])
    recall = np.asarray(result["recall"]).reshape([2, 1, 2, 2])
    # Threshold 0.5, all areas: one regular gt, found by the first detection.
    assert recall[0, 0, 0].tolist() == [1.0, 1.0]
    assert precision[0, :, 0, 0, 1] == pytest.approx([1.0] * 5)
    # Threshold 0.75: detection 12 is a false positive after the true positive.
    assert recall[1, 0, 0, 1] == 1.0
    # Small area range: no regular gt, so the tables keep -1.
    assert (precision[:, :, 0, 1, :] == -1).all() and (recall[:, 0, 1, :] == -1).all()


def test_core_empty_and_default_evaluations():
    C = load_C()
    out = C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[[]], [[]]], [[[]], [[_ann(1)]]], [[[]], [[]]])
    assert [e.is_empty for e in out] == [True, False, True, False]
    params = SimpleNamespace(
        iouThrs=THRESHOLDS, recThrs=[0.0, 0.5, 1.0], maxDets=[10], areaRng=AREAS, catIds=[1], imgIds=[1, 2], useCats=1
    )
    result = C.COCOevalAccumulate(params, out)
    # A regular gt and no detection: recall 0 and precision 0 (not -1) everywhere.
    assert np.asarray(result["recall"]).reshape(2, 1, 2, 1)[:, 0, 0, 0].tolist() == [0.0, 0.0]
    assert (np.asarray(result["precision"]).reshape(2, 3, 1, 2, 1)[:, :, 0, 0] == 0).all()
    # Default-constructed evaluations count as "no instances".
    result = C.COCOevalAccumulate(params, [C.ImageEvaluation() for _ in range(4)])
    assert (np.asarray(result["precision"]) == -1).all()


def test_core_bad_input_raises():
    C = load_C()
    gts, dts = [[[_ann(1)]]], [[[_ann(2, 0.5)]]]
    ok = np.array([[0.7]])
    with pytest.raises(TypeError):
        C.InstanceAnnotation("one", 0.5, 1.0, False, False)
    with pytest.raises(TypeError):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[ok]], [[["not an annotation"]]], dts)
    with pytest.raises(ValueError, match="one entry per image"):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[ok], [ok]], gts, dts)
    with pytest.raises(ValueError, match="same number of categories"):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[ok, ok]], gts, dts)
    with pytest.raises(ValueError, match=r"image_category_ious\[0\]\[0\] must have shape \(1, 1\)"):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[np.zeros((2, 1))]], gts, dts)
    with pytest.raises(ValueError, match="2-D"):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[np.zeros((1, 1, 1))]], gts, dts)
    with pytest.raises((TypeError, ValueError), match=r"image_category_ious\[0\]\[0\]"):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[None]], gts, dts)
    with pytest.raises(TypeError, match="image_category_ious"):
        C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, 3, gts, dts)
    with pytest.raises(ValueError, match="area_ranges"):
        C.COCOevalEvaluateImages([[0.0, 1.0, 2.0]], 10, THRESHOLDS, [[ok]], gts, dts)
    with pytest.raises(ValueError, match="max_dets"):
        C.COCOevalEvaluateImages(AREAS, -1, THRESHOLDS, [[ok]], gts, dts)

    out = C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[ok]], gts, dts)
    params = SimpleNamespace(
        iouThrs=THRESHOLDS, recThrs=[0.0, 1.0], maxDets=[10], areaRng=AREAS, catIds=[1], imgIds=[1], useCats=1
    )
    assert C.COCOevalAccumulate(params, out)["counts"] == [2, 2, 1, 2, 1]
    with pytest.raises(ValueError, match="one entry per"):
        C.COCOevalAccumulate(params, out[:1])
    with pytest.raises(TypeError, match=r"evaluations\[1\]"):
        C.COCOevalAccumulate(params, [out[0], "x"])
    with pytest.raises(TypeError, match="evaluations"):
        C.COCOevalAccumulate(params, 5)
    with pytest.raises(TypeError, match="recThrs"):
        C.COCOevalAccumulate(SimpleNamespace(**{k: v for k, v in vars(params).items() if k != "recThrs"}), out)
    with pytest.raises(ValueError, match="IoU thresholds"):
        C.COCOevalAccumulate(SimpleNamespace(**{**vars(params), "iouThrs": [0.5]}), out)
    with pytest.raises(ValueError, match="maxDets"):
        C.COCOevalAccumulate(SimpleNamespace(**{**vars(params), "maxDets": [-3]}), out)


def test_core_accepts_non_contiguous_and_list_ious():
    C = load_C()
    gts = [[[_ann(1), _ann(2)]]]
    dts = [[[_ann(5, 0.9), _ann(6, 0.3)]]]
    base = np.array([[0.9, 0.1], [0.2, 0.6]])
    reference = C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[base]], gts, dts)
    variants = [np.asfortranarray(base), base.T.copy().T, base.tolist(), base.astype(np.float32).astype(np.float64)]
    wide = np.zeros((2, 4))
    wide[:, ::2] = base
    variants.append(wide[:, ::2])  # strided view
    for ious in variants:
        out = C.COCOevalEvaluateImages(AREAS, 10, THRESHOLDS, [[ious]], gts, dts)
        for a, b in zip(reference, out):
            np.testing.assert_array_equal(a.detection_matches, b.detection_matches)
            np.testing.assert_array_equal(a.detection_ignores, b.detection_ignores)

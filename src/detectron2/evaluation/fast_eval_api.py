"""``COCOeval_opt``: pycocotools' COCOeval with the per-image matching (evaluate) and the
precision/recall accumulation (accumulate) done by detectron2's C++ core.

The results are identical to pycocotools' (``eval["precision"]``, ``eval["recall"]``,
``eval["scores"]``, ``stats``); only the time differs. IoUs are still computed by
pycocotools (``computeIoU`` / ``computeOks``), so bbox, segm and keypoints all work.
"""
import copy
import logging
import time
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

import numpy as np
from pycocotools.cocoeval import COCOeval

from detectron2.layers._ops import load_C

logger = logging.getLogger(__name__)

__all__ = ["COCOeval_opt"]


def _effective_cat_ids(params: Any) -> List[Any]:
    return list(params.catIds) if params.useCats else [-1]


class COCOeval_opt(COCOeval):
    """Drop-in for ``pycocotools.cocoeval.COCOeval`` with C++ evaluate() and accumulate().

    ``evalImgs`` is built (in pycocotools' format) only when it is read, since the C++
    results are all that accumulate() needs.
    """

    @property
    def evalImgs(self) -> Any:
        images = self.__dict__.get("_evalImgs")
        if images is None and self.__dict__.get("_evalImgs_cpp") is not None:
            images = self._evalImgs = self._evaluations_to_python()
        return images

    @evalImgs.setter
    def evalImgs(self, value: Any) -> None:
        self._evalImgs = value

    def evaluate(self) -> None:
        """Match detections to ground truths for every (image, category, area range)."""
        tic = time.time()
        p = self.params
        if p.useSegm is not None:  # deprecated flag that pycocotools still honours
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
        if p.iouType in ("segm", "bbox"):
            compute_iou = self.computeIoU
        elif p.iouType == "keypoints":
            compute_iou = self.computeOks
        else:
            raise ValueError(f"COCOeval_opt: params.iouType must be 'segm', 'bbox' or 'keypoints', got {p.iouType!r}")
        logger.info("Evaluate annotation type *%s*", p.iouType)
        p.imgIds = list(np.unique(p.imgIds))
        if p.useCats:
            p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self.params = p

        self._prepare()
        cat_ids = _effective_cat_ids(p)
        self.ious = {(img, cat): compute_iou(img, cat) for img in p.imgIds for cat in cat_ids}

        gts = self._instances_per_image(self._gts, is_detection=False)
        dts = self._instances_per_image(self._dts, is_detection=True)
        ious = [[self.ious[img, cat] for cat in cat_ids] for img in p.imgIds]
        C = load_C()
        self._evalImgs_cpp = C.COCOevalEvaluateImages(p.areaRng, p.maxDets[-1], p.iouThrs, ious, gts, dts)
        self._evalImgs = None
        self._paramsEval = copy.deepcopy(self.params)
        logger.info("COCOeval_opt.evaluate() finished in %0.2f seconds.", time.time() - tic)

    def _instances_per_image(self, instances: Dict[Any, List[dict]], is_detection: bool) -> List[List[list]]:
        """[image][category] lists of C++ InstanceAnnotation (one merged category without useCats)."""
        p = self.params
        C = load_C()

        def convert(annotations: List[dict]) -> list:
            return [
                C.InstanceAnnotation(
                    int(a["id"]),
                    float(a["score"]) if is_detection else float(a.get("score", 0.0)),
                    float(a["area"]),
                    bool(a.get("iscrowd", 0)),
                    bool(a.get("ignore", 0)),
                )
                for a in annotations
            ]

        if p.useCats:
            return [[convert(instances[img, cat]) for cat in p.catIds] for img in p.imgIds]
        return [[convert([a for cat in p.catIds for a in instances[img, cat]])] for img in p.imgIds]

    def _evaluations_to_python(self) -> List[Optional[dict]]:
        """The C++ matching results as pycocotools' evalImgs list."""
        p = self._paramsEval
        max_det = p.maxDets[-1]
        evaluations = iter(self._evalImgs_cpp)
        images: List[Optional[dict]] = []
        for cat in _effective_cat_ids(p):
            for area_range in p.areaRng:
                for img in p.imgIds:
                    e = next(evaluations)
                    if e.is_empty:
                        images.append(None)
                        continue
                    images.append(
                        {
                            "image_id": img,
                            "category_id": cat,
                            "aRng": area_range,
                            "maxDet": max_det,
                            "dtIds": e.detection_ids.tolist(),
                            "gtIds": e.ground_truth_ids.tolist(),
                            "dtMatches": e.detection_matches.astype(np.float64),
                            "gtMatches": e.ground_truth_matches.astype(np.float64),
                            "dtScores": e.detection_scores.tolist(),
                            "gtIgnore": e.ground_truth_ignores.astype(np.int64),
                            "dtIgnore": e.detection_ignores,
                        }
                    )
        return images

    def accumulate(self, p: Any = None) -> None:
        """Precision/recall tables of the last evaluate(), into ``self.eval``."""
        tic = time.time()
        if self.__dict__.get("_evalImgs_cpp") is None:
            raise RuntimeError("COCOeval_opt: evaluate() must be called before accumulate()")
        if p is None:
            p = self.params
        p.catIds = p.catIds if p.useCats == 1 else [-1]  # pycocotools updates the params too
        C = load_C()
        T, R, A, M = len(p.iouThrs), len(p.recThrs), len(p.areaRng), len(p.maxDets)
        K = len(p.catIds) if p.useCats else 1
        counts = [T, R, K, A, M]
        selection = self._select_evaluations(p)
        if selection is None:  # p describes exactly what evaluate() produced
            result = C.COCOevalAccumulate(p, self._evalImgs_cpp)
            precision = np.asarray(result["precision"]).reshape(counts)
            recall = np.asarray(result["recall"]).reshape(counts[:1] + counts[2:])
            scores = np.asarray(result["scores"]).reshape(counts)
            date = result["date"]
        else:
            precision, recall, scores, date = self._accumulate_subset(p, counts, *selection)
        self.eval = {
            "params": p,
            "counts": counts,
            "date": date,
            "precision": precision,
            "recall": recall,
            "scores": scores,
        }
        logger.info("COCOeval_opt.accumulate() finished in %0.2f seconds.", time.time() - tic)

    def _select_evaluations(self, p: Any) -> Optional[tuple]:
        """None when `p` selects every evaluation in order; else pycocotools' index lists."""
        pe = self._paramsEval
        cats, areas = _effective_cat_ids(pe), [tuple(a) for a in pe.areaRng]
        if (
            list(p.catIds) == cats
            and [tuple(a) for a in p.areaRng] == areas
            and list(p.imgIds) == list(pe.imgIds)
            and list(p.maxDets) == list(pe.maxDets)
        ):
            return None
        set_k, set_a, set_m, set_i = set(cats), set(areas), set(pe.maxDets), set(pe.imgIds)
        k_list = [n for n, k in enumerate(p.catIds) if k in set_k]
        a_list = [n for n, a in enumerate(p.areaRng) if tuple(a) in set_a]
        m_list = [m for m in p.maxDets if m in set_m]
        i_list = [n for n, i in enumerate(p.imgIds) if i in set_i]
        return k_list, a_list, m_list, i_list

    def _accumulate_subset(self, p: Any, counts: List[int], k_list, a_list, m_list, i_list) -> tuple:
        """pycocotools' accumulate with params that differ from the evaluated ones: the
        selected evaluations are gathered with pycocotools' own indexing, accumulated, and
        written to the leading (k, a, m) slots as pycocotools does."""
        pe = self._paramsEval
        A0, I0 = len(pe.areaRng), len(pe.imgIds)
        selected = [self._evalImgs_cpp[k0 * A0 * I0 + a0 * I0 + i] for k0 in k_list for a0 in a_list for i in i_list]
        sub_params = SimpleNamespace(
            iouThrs=p.iouThrs, recThrs=p.recThrs, maxDets=m_list, useCats=1,
            catIds=k_list, areaRng=a_list, imgIds=i_list,
        )
        result = load_C().COCOevalAccumulate(sub_params, selected)
        T, R, K, A, M = counts
        sub = [T, R, len(k_list), len(a_list), len(m_list)]
        precision, scores = -np.ones(counts), -np.ones(counts)
        recall = -np.ones([T, K, A, M])
        precision[:, :, : sub[2], : sub[3], : sub[4]] = np.asarray(result["precision"]).reshape(sub)
        scores[:, :, : sub[2], : sub[3], : sub[4]] = np.asarray(result["scores"]).reshape(sub)
        recall[:, : sub[2], : sub[3], : sub[4]] = np.asarray(result["recall"]).reshape(sub[:1] + sub[2:])
        return precision, recall, scores, result["date"]

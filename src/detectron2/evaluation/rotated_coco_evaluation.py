"""COCO-style box AP for rotated boxes (XYWHA), with rotated-box IoU."""
import itertools
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detectron2.structures import BoxMode, Instances, RotatedBoxes, pairwise_iou_rotated

from .coco_evaluation import COCOEvaluator
from .fast_eval_api import COCOeval_opt

__all__ = ["RotatedCOCOeval", "RotatedCOCOEvaluator"]


class _RotatedIoU:
    """computeIoU of COCOeval for boxes that may carry an angle (5 numbers)."""

    @staticmethod
    def is_rotated(box_list: Any) -> bool:
        if isinstance(box_list, np.ndarray):
            return box_list.ndim == 2 and box_list.shape[1] == 5
        if isinstance(box_list, list):
            if not box_list:
                return False
            return all(isinstance(obj, (list, np.ndarray)) and len(obj) == 5 for obj in box_list)
        return False

    @staticmethod
    def boxlist_to_tensor(boxlist: Any, output_box_dim: int) -> torch.Tensor:
        """Boxes as an (N, output_box_dim) float tensor; 4-number XYWH boxes become
        XYWHA with angle 0 when 5 are asked for."""
        if isinstance(boxlist, np.ndarray):
            box_tensor = torch.from_numpy(boxlist)
        elif isinstance(boxlist, list):
            if not boxlist:
                return torch.zeros((0, output_box_dim), dtype=torch.float32)
            box_tensor = torch.tensor(boxlist, dtype=torch.float32)
        else:
            raise TypeError(f"boxlist must be a list or numpy array, got {type(boxlist).__name__}")
        input_box_dim = box_tensor.shape[1]
        if input_box_dim != output_box_dim:
            if input_box_dim == 4 and output_box_dim == 5:
                box_tensor = BoxMode.convert(box_tensor, BoxMode.XYWH_ABS, BoxMode.XYWHA_ABS)
            else:
                raise ValueError(f"Unable to convert from {input_box_dim}-dim box to {output_box_dim}-dim box")
        return box_tensor

    def compute_iou_dt_gt(self, dt: Any, gt: Any, is_crowd: List[int]) -> Any:
        if self.is_rotated(dt) or self.is_rotated(gt):
            # crowd regions have no meaning for rotated boxes
            if any(c != 0 for c in is_crowd):
                raise ValueError("RotatedCOCOeval: crowd annotations are not supported with rotated boxes")
            dt_boxes = RotatedBoxes(self.boxlist_to_tensor(dt, output_box_dim=5))
            gt_boxes = RotatedBoxes(self.boxlist_to_tensor(gt, output_box_dim=5))
            return pairwise_iou_rotated(dt_boxes, gt_boxes).numpy()
        return mask_util.iou(dt, gt, is_crowd)

    def computeIoU(self, imgId: int, catId: int) -> Any:
        p = self.params
        if p.useCats:
            gt, dt = self._gts[imgId, catId], self._dts[imgId, catId]
        else:
            gt = [g for c in p.catIds for g in self._gts[imgId, c]]
            dt = [d for c in p.catIds for d in self._dts[imgId, c]]
        if len(gt) == 0 and len(dt) == 0:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order][: p.maxDets[-1]]
        if p.iouType != "bbox":
            raise ValueError(f"RotatedCOCOeval only evaluates iouType 'bbox', got {p.iouType!r}")
        return self.compute_iou_dt_gt([d["bbox"] for d in dt], [g["bbox"] for g in gt], [int(o["iscrowd"]) for o in gt])


class RotatedCOCOeval(_RotatedIoU, COCOeval):
    """pycocotools' COCOeval with rotated-box IoU."""


class _RotatedCOCOevalOpt(_RotatedIoU, COCOeval_opt):
    """The same with the C++ matching and accumulation."""


class RotatedCOCOEvaluator(COCOEvaluator):
    """Box AP for rotated boxes: predictions' ``pred_boxes`` are RotatedBoxes (XYWHA) or
    Boxes; ground-truth ``bbox`` entries of the json may have 4 or 5 numbers. Only the
    "bbox" task exists."""

    def _instances_to_json(self, instances: Instances, img_id: int) -> List[Dict[str, Any]]:
        return self.instances_to_json(instances, img_id)

    def instances_to_json(self, instances: Instances, img_id: int) -> List[Dict[str, Any]]:
        if len(instances) == 0:
            return []
        boxes = instances.pred_boxes.tensor.numpy()
        if boxes.shape[1] == 4:
            boxes = BoxMode.convert(boxes, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
        boxes = boxes.tolist()
        scores = instances.scores.tolist()
        classes = instances.pred_classes.tolist()
        return [
            {"image_id": img_id, "category_id": classes[k], "bbox": boxes[k], "score": scores[k]}
            for k in range(len(instances))
        ]

    def _eval_predictions(self, predictions: List[Dict[str, Any]], img_ids: Optional[Sequence[int]] = None) -> None:
        self._logger.info("Preparing results for COCO format ...")
        coco_results = [dict(r) for r in itertools.chain(*[x["instances"] for x in predictions])]
        self._unmap_category_ids(coco_results)
        self._write_results_json(coco_results, "coco_instances_results.json")
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        if self._tasks is not None and set(self._tasks) != {"bbox"}:
            raise ValueError("[RotatedCOCOEvaluator] Only bbox evaluation is supported")
        self._logger.info("Evaluating predictions ...")
        coco_eval = self._evaluate_predictions_on_coco(self._coco_api, coco_results, img_ids) if coco_results else None
        self._results["bbox"] = self._derive_coco_results(
            coco_eval, "bbox", class_names=self._metadata.get("thing_classes")
        )

    def _evaluate_predictions_on_coco(
        self, coco_gt: COCO, coco_results: List[Dict[str, Any]], img_ids: Optional[Sequence[int]] = None
    ) -> COCOeval:
        if len(coco_results) == 0:
            raise ValueError("_evaluate_predictions_on_coco needs at least one result")
        coco_dt = coco_gt.loadRes(coco_results)
        cocoeval_fn = _RotatedCOCOevalOpt if self._use_fast_impl else RotatedCOCOeval
        coco_eval = cocoeval_fn(coco_gt, coco_dt, iouType="bbox")
        if img_ids is not None:
            coco_eval.params.imgIds = list(img_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        return coco_eval

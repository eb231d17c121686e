"""Semantic segmentation metrics (IoU, accuracy) from a dataset-wide confusion matrix."""
import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image

from detectron2.utils.comm import all_gather, is_main_process, synchronize
from detectron2.utils.file_io import PathManager

from ._optional import metadata_of
from .evaluator import DatasetEvaluator

__all__ = ["SemSegEvaluator", "load_image_into_numpy_array"]


def load_image_into_numpy_array(filename: str, copy: bool = False, dtype: Optional[Any] = None) -> np.ndarray:
    """Read an image file (e.g. a label PNG) into an array of ``dtype``."""
    with PathManager.open(filename, "rb") as f:
        image = Image.open(f)
        array = np.array(image, dtype=dtype) if copy else np.asarray(image, dtype=dtype)
    return array


class SemSegEvaluator(DatasetEvaluator):
    """mIoU, fwIoU, mACC, pACC and per-class IoU / accuracy of ``output["sem_seg"]``
    (CxHxW scores) against the ground-truth label images of the dataset
    (``sem_seg_file_name`` of each record). Pixels labelled ``ignore_label`` are left out.
    With ``compute_boundary_iou`` also the per-class boundary IoU (Cheng et al. 2021).
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        sem_seg_loading_fn: Callable[..., np.ndarray] = load_image_into_numpy_array,
        num_classes: Optional[int] = None,
        ignore_label: Optional[int] = None,
        compute_boundary_iou: bool = False,
    ):
        """
        Args:
            dataset_name: a registered dataset whose metadata has ``stuff_classes`` and
                ``ignore_label`` (and optionally ``stuff_dataset_id_to_contiguous_id``).
            distributed: sum the confusion matrices of all ranks.
            output_dir: where ``sem_seg_predictions.json`` (RLEs per class) is written.
            sem_seg_loading_fn: reads a ground-truth file as ``fn(path, dtype=int)``.
            num_classes, ignore_label: deprecated overrides of the metadata's values.
            compute_boundary_iou: also compute boundary IoU (costs an erosion per class).
        """
        from detectron2.data import DatasetCatalog

        self._logger = logging.getLogger(__name__)
        if num_classes is not None:
            self._logger.warning("SemSegEvaluator(num_classes) is deprecated! It should be obtained from metadata.")
        if ignore_label is not None:
            self._logger.warning("SemSegEvaluator(ignore_label) is deprecated! It should be obtained from metadata.")
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._output_dir = output_dir
        self._cpu_device = torch.device("cpu")
        self.input_file_to_gt_file = {
            record["file_name"]: record["sem_seg_file_name"] for record in DatasetCatalog.get(dataset_name)
        }
        meta = metadata_of(dataset_name)
        mapping = meta.get("stuff_dataset_id_to_contiguous_id")
        self._contiguous_id_to_dataset_id = None if mapping is None else {v: k for k, v in mapping.items()}
        self._class_names = meta.stuff_classes
        self.sem_seg_loading_fn = sem_seg_loading_fn
        self._num_classes = len(meta.stuff_classes)
        if num_classes is not None and num_classes != self._num_classes:
            raise ValueError(f"num_classes={num_classes} but the metadata has {self._num_classes} stuff_classes")
        self._ignore_label = ignore_label if ignore_label is not None else meta.ignore_label
        self._compute_boundary_iou = compute_boundary_iou

    def reset(self) -> None:
        # Rows: predicted class, columns: ground truth; the extra last column is "ignored".
        n = self._num_classes + 1
        self._conf_matrix = np.zeros((n, n), dtype=np.int64)
        self._b_intersection = np.zeros(self._num_classes, dtype=np.int64)
        self._b_union = np.zeros(self._num_classes, dtype=np.int64)
        self._predictions: List[Dict[str, Any]] = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        for inp, out in zip(inputs, outputs):
            pred = out["sem_seg"].argmax(dim=0).to(self._cpu_device).numpy().astype(np.int64)
            gt = np.asarray(self.sem_seg_loading_fn(self.input_file_to_gt_file[inp["file_name"]], dtype=int))
            gt = gt.astype(np.int64)  # copy: the ignore label is rewritten below
            if gt.shape != pred.shape:
                raise ValueError(
                    f"SemSegEvaluator: prediction of {inp['file_name']} is {pred.shape}, ground truth {gt.shape}"
                )
            gt[gt == self._ignore_label] = self._num_classes
            valid = (gt >= 0) & (gt <= self._num_classes)
            if not valid.all():
                raise ValueError(
                    f"SemSegEvaluator: ground truth of {inp['file_name']} has labels outside "
                    f"[0, {self._num_classes}) that are not the ignore label {self._ignore_label}"
                )
            n = self._num_classes + 1
            self._conf_matrix += np.bincount(n * pred.reshape(-1) + gt.reshape(-1), minlength=n * n).reshape(n, n)
            if self._compute_boundary_iou:
                self._accumulate_boundary_iou(pred, gt)
            self._predictions.extend(self.encode_json_sem_seg(pred, inp["file_name"]))

    def _accumulate_boundary_iou(self, pred: np.ndarray, gt: np.ndarray) -> None:
        considered = gt != self._num_classes
        for c in range(self._num_classes):
            b_gt = _mask_to_boundary(gt == c) & considered
            b_pred = _mask_to_boundary(pred == c) & considered
            self._b_intersection[c] += np.count_nonzero(b_gt & b_pred)
            self._b_union[c] += np.count_nonzero(b_gt | b_pred)

    def evaluate(self) -> Optional[Dict[str, Any]]:
        """``{"sem_seg": {"mIoU", "fwIoU", "IoU-<class>", "mACC", "pACC", "ACC-<class>"}}``
        in percent; classes absent from the ground truth are NaN and left out of means."""
        if self._distributed:
            synchronize()
            conf_matrices = all_gather(self._conf_matrix)
            b_inter, b_union = all_gather(self._b_intersection), all_gather(self._b_union)
            predictions = list(itertools.chain(*all_gather(self._predictions)))
            if not is_main_process():
                return None
            self._conf_matrix = np.sum(conf_matrices, axis=0)
            self._b_intersection, self._b_union = np.sum(b_inter, axis=0), np.sum(b_union, axis=0)
            self._predictions = predictions

        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            with PathManager.open(os.path.join(self._output_dir, "sem_seg_predictions.json"), "w") as f:
                f.write(json.dumps(self._predictions))

        res = self._metrics()
        if self._output_dir:
            with PathManager.open(os.path.join(self._output_dir, "sem_seg_evaluation.pth"), "wb") as f:
                torch.save(res, f)
        results = OrderedDict({"sem_seg": res})
        self._logger.info(results)
        return results

    def _metrics(self) -> Dict[str, float]:
        tp = self._conf_matrix.diagonal()[:-1].astype(float)
        pos_gt = self._conf_matrix[:-1, :-1].sum(axis=0).astype(float)
        pos_pred = self._conf_matrix[:-1, :-1].sum(axis=1).astype(float)
        class_weights = pos_gt / max(pos_gt.sum(), 1.0)
        acc = np.full(self._num_classes, np.nan, dtype=float)
        iou = np.full(self._num_classes, np.nan, dtype=float)
        acc_valid = pos_gt > 0
        acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]
        union = pos_gt + pos_pred - tp
        iou_valid = acc_valid & (union > 0)
        iou[iou_valid] = tp[iou_valid] / union[iou_valid]

        res: Dict[str, float] = {}
        res["mIoU"] = 100 * _mean(iou[iou_valid])
        res["fwIoU"] = 100 * float(np.sum(iou[iou_valid] * class_weights[iou_valid]))
        b_iou = None
        if self._compute_boundary_iou:
            b_iou = np.full(self._num_classes, np.nan, dtype=float)
            b_valid = self._b_union > 0
            b_iou[b_valid] = self._b_intersection[b_valid] / self._b_union[b_valid]
        for i, name in enumerate(self._class_names):
            res[f"IoU-{name}"] = 100 * iou[i]
            if b_iou is not None:
                res[f"BoundaryIoU-{name}"] = 100 * b_iou[i]
                res[f"min(IoU, B-Iou)-{name}"] = 100 * min(iou[i], b_iou[i])
        res["mACC"] = 100 * _mean(acc[acc_valid])
        res["pACC"] = 100 * float(tp.sum() / pos_gt.sum()) if pos_gt.sum() > 0 else float("nan")
        for i, name in enumerate(self._class_names):
            res[f"ACC-{name}"] = 100 * acc[i]
        return res

    def encode_json_sem_seg(self, sem_seg: np.ndarray, input_file_name: str) -> List[Dict[str, Any]]:
        """One COCO-style dict per predicted class: its mask as an RLE, with the
        dataset's category id."""
        json_list = []
        for label in np.unique(sem_seg):
            label = int(label)
            if self._contiguous_id_to_dataset_id is not None:
                if label not in self._contiguous_id_to_dataset_id:
                    raise ValueError(f"Label {label} is not in the metadata info for {self._dataset_name}")
                dataset_id = self._contiguous_id_to_dataset_id[label]
            else:
                dataset_id = label
            mask = np.asfortranarray((sem_seg == label).astype(np.uint8)[:, :, None])
            rle = mask_util.encode(mask)[0]
            rle["counts"] = rle["counts"].decode("utf-8")
            json_list.append({"file_name": input_file_name, "category_id": dataset_id, "segmentation": rle})
        return json_list


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else float("nan")


def _mask_to_boundary(mask: np.ndarray, dilation_ratio: float = 0.02) -> np.ndarray:
    """The inner band of a binary mask: pixels within ``dilation_ratio`` of the image
    diagonal from the mask's edge (the image border counts as an edge)."""
    import cv2

    h, w = mask.shape
    dilation = max(1, int(round(dilation_ratio * np.sqrt(h * h + w * w))))
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=dilation)[1:-1, 1:-1]
    return mask & (eroded == 0)

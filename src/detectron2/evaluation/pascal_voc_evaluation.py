"""Pascal VOC detection AP (VOC2007 11-point or VOC2012 area metric), in Python.

The numbers follow the devkit's definitions but do not come from the official Matlab code.
"""
import logging
import os
import tempfile
import xml.etree.ElementTree as ET
from collections import OrderedDict, defaultdict
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ._optional import metadata_of
from .evaluator import DatasetEvaluator

__all__ = ["PascalVOCDetectionEvaluator", "voc_eval", "voc_ap", "parse_rec"]


class PascalVOCDetectionEvaluator(DatasetEvaluator):
    """AP of box detections on a VOC-format dataset (metadata: ``dirname``, ``split``,
    ``year`` 2007 or 2012, ``thing_classes``). Results ``{"bbox": {"AP", "AP50", "AP75"}}``
    where AP averages the IoU thresholds 0.50:0.95."""

    def __init__(self, dataset_name: str):
        self._dataset_name = dataset_name
        meta = metadata_of(dataset_name)
        # The annotations are read many times: fetch remote ones to a local copy once.
        annotation_dir_local = PathManager.get_local_path(os.path.join(meta.dirname, "Annotations/"))
        self._anno_file_template = os.path.join(annotation_dir_local, "{}.xml")
        self._image_set_path = os.path.join(meta.dirname, "ImageSets", "Main", meta.split + ".txt")
        self._class_names = meta.thing_classes
        if meta.year not in (2007, 2012):
            raise ValueError(f"PascalVOCDetectionEvaluator: metadata.year must be 2007 or 2012, got {meta.year}")
        self._is_2007 = meta.year == 2007
        self._cpu_device = torch.device("cpu")
        self._logger = logging.getLogger(__name__)

    def reset(self) -> None:
        self._predictions: Dict[int, List[str]] = defaultdict(list)  # class id -> detection lines

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            instances = out["instances"].to(self._cpu_device)
            boxes = instances.pred_boxes.tensor.numpy()
            scores = instances.scores.tolist()
            classes = instances.pred_classes.tolist()
            for box, score, cls in zip(boxes, scores, classes):
                xmin, ymin, xmax, ymax = box
                # VOC boxes are 1-based; the loader subtracted 1 from xmin/ymin.
                xmin += 1
                ymin += 1
                self._predictions[cls].append(f"{image_id} {score:.3f} {xmin:.1f} {ymin:.1f} {xmax:.1f} {ymax:.1f}")

    def evaluate(self) -> Optional[Dict[str, Any]]:
        all_predictions = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        predictions: Dict[int, List[str]] = defaultdict(list)
        for predictions_per_rank in all_predictions:
            for cls_id, lines in predictions_per_rank.items():
                predictions[cls_id].extend(lines)

        self._logger.info(
            "Evaluating %s using %d metric. Note that results do not use the official Matlab API.",
            self._dataset_name,
            2007 if self._is_2007 else 2012,
        )
        aps: Dict[int, List[float]] = defaultdict(list)  # IoU threshold (percent) -> AP per class
        with tempfile.TemporaryDirectory(prefix="pascal_voc_eval_") as dirname:
            res_file_template = os.path.join(dirname, "{}.txt")
            for cls_id, cls_name in enumerate(self._class_names):
                with open(res_file_template.format(cls_name), "w") as f:
                    f.write("\n".join(predictions.get(cls_id, [])))
                for thresh in range(50, 100, 5):
                    _, _, ap = voc_eval(
                        res_file_template,
                        self._anno_file_template,
                        self._image_set_path,
                        cls_name,
                        ovthresh=thresh / 100.0,
                        use_07_metric=self._is_2007,
                    )
                    aps[thresh].append(ap * 100)

        m_ap = {iou: float(np.mean(x)) for iou, x in aps.items()}
        return OrderedDict({"bbox": {"AP": float(np.mean(list(m_ap.values()))), "AP50": m_ap[50], "AP75": m_ap[75]}})


@lru_cache(maxsize=None)
def parse_rec(filename: str) -> List[Dict[str, Any]]:
    """The objects of one VOC annotation xml: name, pose, truncated, difficult, bbox."""
    with PathManager.open(filename) as f:
        tree = ET.parse(f)
    objects = []
    for obj in tree.findall("object"):
        bbox = obj.find("bndbox")
        objects.append(
            {
                "name": obj.find("name").text,
                "pose": _text(obj, "pose", "Unspecified"),
                "truncated": int(_text(obj, "truncated", "0")),
                "difficult": int(_text(obj, "difficult", "0")),
                "bbox": [int(float(bbox.find(k).text)) for k in ("xmin", "ymin", "xmax", "ymax")],
            }
        )
    return objects


def _text(node: ET.Element, tag: str, default: str) -> str:
    child = node.find(tag)
    return default if child is None or child.text is None else child.text


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = False) -> float:
    """Area under the precision/recall curve: VOC2007's 11-point interpolation, or the
    exact area under the monotone (max-to-the-right) precision envelope."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = np.max(prec[rec >= t]) if np.sum(rec >= t) > 0 else 0.0
            ap += p / 11.0
        return float(ap)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    change = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[change + 1] - mrec[change]) * mpre[change + 1]))


def _class_records(annopath: str, imagenames: List[str], classname: str) -> Tuple[Dict[str, Dict[str, Any]], int]:
    """Per image: the ground-truth boxes of ``classname``, difficult flags, matched flags;
    and the number of non-difficult boxes."""
    records = {}
    npos = 0
    for name in imagenames:
        objects = [obj for obj in parse_rec(annopath.format(name)) if obj["name"] == classname]
        difficult = np.array([obj["difficult"] for obj in objects], dtype=bool)
        records[name] = {
            "bbox": np.array([obj["bbox"] for obj in objects], dtype=float).reshape(-1, 4),
            "difficult": difficult,
            "det": [False] * len(objects),
        }
        npos += int(np.sum(~difficult))
    return records, npos


def _read_detections(path: str) -> Tuple[List[str], np.ndarray, np.ndarray]:
    with open(path) as f:
        rows = [line.strip().split(" ") for line in f if line.strip()]
    image_ids = [row[0] for row in rows]
    confidence = np.array([float(row[1]) for row in rows], dtype=float)
    boxes = np.array([[float(v) for v in row[2:]] for row in rows], dtype=float).reshape(-1, 4)
    return image_ids, confidence, boxes


def _overlaps(gt: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of ``box`` with each row of ``gt`` in VOC's inclusive pixel convention (+1)."""
    iw = np.maximum(np.minimum(gt[:, 2], box[2]) - np.maximum(gt[:, 0], box[0]) + 1.0, 0.0)
    ih = np.maximum(np.minimum(gt[:, 3], box[3]) - np.maximum(gt[:, 1], box[1]) + 1.0, 0.0)
    inters = iw * ih
    union = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0) + (gt[:, 2] - gt[:, 0] + 1.0) * (
        gt[:, 3] - gt[:, 1] + 1.0
    ) - inters
    return inters / union


def voc_eval(
    detpath: str,
    annopath: str,
    imagesetfile: str,
    classname: str,
    ovthresh: float = 0.5,
    use_07_metric: bool = False,
) -> Tuple[np.ndarray, np.ndarray, float]:
    """(recall, precision, AP) of one class.

    Args:
        detpath: template, ``detpath.format(classname)`` is a file of lines
            "image_id score xmin ymin xmax ymax".
        annopath: template, ``annopath.format(image_id)`` is the annotation xml.
        imagesetfile: text file with one image id per line.
        ovthresh: IoU needed for a true positive.
        use_07_metric: VOC2007's 11-point AP instead of the area under the curve.

    Detections matched to a "difficult" box count as neither true nor false positives.
    """
    with PathManager.open(imagesetfile, "r") as f:
        imagenames = [x.strip() for x in f.readlines() if x.strip()]
    class_recs, npos = _class_records(annopath, imagenames, classname)

    image_ids, confidence, boxes = _read_detections(detpath.format(classname))
    order = np.argsort(-confidence, kind="stable")
    boxes = boxes[order]
    image_ids = [image_ids[i] for i in order]

    nd = len(image_ids)
    tp, fp = np.zeros(nd), np.zeros(nd)
    for d in range(nd):
        rec = class_recs[image_ids[d]]
        gt = rec["bbox"]
        ovmax, jmax = -np.inf, -1
        if gt.size > 0:
            overlaps = _overlaps(gt, boxes[d])
            jmax = int(np.argmax(overlaps))
            ovmax = overlaps[jmax]
        if ovmax > ovthresh:
            if rec["difficult"][jmax]:
                continue
            if not rec["det"][jmax]:
                tp[d] = 1.0
                rec["det"][jmax] = True
            else:
                fp[d] = 1.0
        else:
            fp[d] = 1.0

    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos) if npos > 0 else np.full(nd, np.nan)
    # eps avoids 0/0 when the first detections are all ignored (difficult)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return rec, prec, voc_ap(rec, prec, use_07_metric)

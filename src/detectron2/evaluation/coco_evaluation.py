"""COCO-style evaluation of boxes, masks, keypoints and box proposals."""
import contextlib
import copy
import functools
import io
import itertools
import json
import logging
import os
import pickle
from abc import ABCMeta, abstractmethod
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import pycocotools.mask as mask_util
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

import detectron2.utils.comm as comm
from detectron2.checkpoint.safe_load import atomic_write
from detectron2.layers._errors import ValueAssertionError
from detectron2.layers._checks import BadInputError
from detectron2.structures import Boxes, BoxMode, Instances, pairwise_iou
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from ._optional import metadata_of
from .evaluator import DatasetEvaluator
from .fast_eval_api import COCOeval_opt

__all__ = ["COCOEvaluator", "instances_to_coco_json", "COCOevalMaxDets"]

_TASKS = ("bbox", "segm", "keypoints")


def _fast_impl_available() -> bool:
    from detectron2.layers._ops import load_C

    try:
        C = load_C()
    except ImportError:
        return False
    return hasattr(C, "COCOevalEvaluateImages") and hasattr(C, "COCOevalAccumulate")


class _InstancesEvaluator(DatasetEvaluator, metaclass=ABCMeta):
    """What the COCO and LVIS evaluators share: keeping per-image predictions (instances as
    COCO json, proposals), gathering them on rank 0, saving them, and proposal recall.

    Subclasses set ``_logger``, ``_distributed``, ``_output_dir``, ``_cpu_device`` and
    ``_do_evaluation``, and implement ``_eval_predictions`` and ``_proposal_recall``.
    """

    def reset(self) -> None:
        self._predictions: List[Dict[str, Any]] = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Keep each image's instances (as COCO json dicts) and proposals on the CPU."""
        for inp, out in zip(inputs, outputs):
            prediction: Dict[str, Any] = {"image_id": inp["image_id"]}
            if "instances" in out:
                instances = out["instances"].to(self._cpu_device)
                prediction["instances"] = self._instances_to_json(instances, inp["image_id"])
            if "proposals" in out:
                prediction["proposals"] = out["proposals"].to(self._cpu_device)
            if len(prediction) > 1:
                self._predictions.append(prediction)

    def _instances_to_json(self, instances: Instances, img_id: int) -> List[Dict[str, Any]]:
        return instances_to_coco_json(instances, img_id)

    def _evaluate(self, **kwargs: Any) -> Dict[str, Any]:
        """Metrics over all ranks' predictions (on rank 0; other ranks get {})."""
        predictions = self._gather_predictions()
        if predictions is None:
            return {}
        if len(predictions) == 0:
            self._logger.warning("[%s] Did not receive valid predictions.", type(self).__name__)
            return {}
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "instances_predictions.pth")
            atomic_write(path, lambda f: torch.save(predictions, f), PathManager)

        self._results: Dict[str, Any] = OrderedDict()
        if "proposals" in predictions[0]:
            self._eval_box_proposals(predictions)
        if "instances" in predictions[0]:
            self._eval_predictions(predictions, **kwargs)
        return copy.deepcopy(self._results)

    def _gather_predictions(self) -> Optional[List[Dict[str, Any]]]:
        """All ranks' predictions on the main process, None elsewhere."""
        if not self._distributed:
            return self._predictions
        comm.synchronize()
        gathered = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        return list(itertools.chain(*gathered))

    @abstractmethod
    def _eval_predictions(self, predictions: List[Dict[str, Any]], **kwargs: Any) -> None:
        """Metrics of the predicted instances, into ``self._results``."""

    @abstractmethod
    def _proposal_recall(self, predictions: List[Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        """``fn(area=, limit=)`` computing the recall stats of ``predictions``."""

    def _write_results_json(self, coco_results: List[Dict[str, Any]], filename: str) -> None:
        if not self._output_dir:
            return
        PathManager.mkdirs(self._output_dir)
        path = os.path.join(self._output_dir, filename)
        self._logger.info("Saving results to %s", path)
        data = json.dumps(coco_results).encode("utf-8")
        atomic_write(path, lambda f: f.write(data), PathManager)

    def _eval_box_proposals(self, predictions: List[Dict[str, Any]]) -> None:
        """Average recall of the proposals at 100 and 1000 per image, over COCO's areas."""
        if self._output_dir:
            proposal_data = _proposal_data(predictions)
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "box_proposals.pkl")
            atomic_write(path, lambda f: pickle.dump(proposal_data, f), PathManager)
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        self._logger.info("Evaluating bbox proposals ...")
        res = _proposal_metrics(self._proposal_recall(predictions))
        self._logger.info("Proposal metrics: \n" + create_small_table(res))
        self._results["box_proposals"] = res


class COCOEvaluator(_InstancesEvaluator):
    """AP of instance detection / segmentation / keypoints and AR of box proposals, with
    COCO's metrics. The dataset's metadata provides ``json_file`` (COCO format); datasets
    registered otherwise are converted to one in ``output_dir`` first.

    Results: ``{"bbox": {"AP": .., "AP50": .., ..., "AP-<class>": ..}, "segm": ..,
    "keypoints": .., "box_proposals": {"AR@100": .., ...}}`` in percent.
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Sequence[str]] = None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        max_dets_per_image: Optional[int] = None,
        use_fast_impl: bool = True,
        kpt_oks_sigmas: Sequence[float] = (),
        allow_cached_coco: bool = True,
    ):
        """
        Args:
            dataset_name: a registered dataset; its metadata's ``json_file`` (if any) holds
                the ground truth in COCO format.
            tasks: any of "bbox", "segm", "keypoints"; None infers them from the predictions.
            distributed: gather the predictions of all ranks and evaluate on rank 0.
            output_dir: where ``instances_predictions.pth`` and
                ``coco_instances_results.json`` are written (nothing when None).
            max_dets_per_image: the last of COCO's maxDets (default 100).
            use_fast_impl: use the C++ COCOeval core (same numbers, faster); falls back
                to pycocotools when the compiled ops are missing.
            kpt_oks_sigmas: per-keypoint OKS sigmas (COCO's 17 person keypoints if empty).
            allow_cached_coco: reuse an earlier conversion of the dataset in ``output_dir``.
        """
        self._logger = logging.getLogger(__name__)
        self._distributed = distributed
        self._output_dir = output_dir
        if use_fast_impl and not _fast_impl_available():
            self._logger.warning("detectron2's C++ COCOeval core is unavailable: using pycocotools' COCOeval.")
            use_fast_impl = False
        self._use_fast_impl = use_fast_impl
        self._max_dets_per_image = [1, 10, 100 if max_dets_per_image is None else max_dets_per_image]
        self._tasks = _check_tasks(tasks, self._logger)
        self._cpu_device = torch.device("cpu")
        self._metadata = metadata_of(dataset_name)
        if not hasattr(self._metadata, "json_file"):
            self._metadata.json_file = _convert_dataset(dataset_name, output_dir, allow_cached_coco, self._logger)
        json_file = PathManager.get_local_path(self._metadata.json_file)
        with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
            self._coco_api = COCO(json_file)
        # Test sets come without annotations: then predictions are only written out.
        self._do_evaluation = "annotations" in self._coco_api.dataset
        if self._do_evaluation:
            self._kpt_oks_sigmas = kpt_oks_sigmas

    def evaluate(self, img_ids: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """Metrics over all ranks' predictions (on rank 0; other ranks get {}).

        Args:
            img_ids: evaluate only these image ids (all images by default).
        """
        return self._evaluate(img_ids=img_ids)

    def _proposal_recall(self, predictions: List[Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        return functools.partial(_evaluate_box_proposals, predictions, self._coco_api)

    def _tasks_from_predictions(self, predictions: List[Dict[str, Any]]) -> Tuple[str, ...]:
        tasks = {"bbox"}
        for pred in predictions:
            if "segmentation" in pred:
                tasks.add("segm")
            if "keypoints" in pred:
                tasks.add("keypoints")
        return tuple(sorted(tasks))

    def _unmap_category_ids(self, coco_results: List[Dict[str, Any]]) -> None:
        """Contiguous class indices (the model's) back to the dataset's category ids."""
        if not hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            self._check_dataset_category_ids(coco_results)
            return
        dataset_to_contiguous = self._metadata.thing_dataset_id_to_contiguous_id
        contiguous_ids = sorted(dataset_to_contiguous.values())
        num_classes = len(contiguous_ids)
        if contiguous_ids != list(range(num_classes)):
            raise ValueAssertionError(
                "metadata.thing_dataset_id_to_contiguous_id must map onto 0..num_classes-1, "
                f"got values {contiguous_ids}"
            )
        reverse = {v: k for k, v in dataset_to_contiguous.items()}
        for result in coco_results:
            category_id = result["category_id"]
            if not 0 <= category_id < num_classes:
                raise ValueAssertionError(
                    f"A prediction has class {category_id}, but the dataset only has {num_classes} "
                    "classes and predicted class id should be in [0, num_classes)."
                )
            result["category_id"] = reverse[category_id]

    def _check_dataset_category_ids(self, coco_results: List[Dict[str, Any]]) -> None:
        """Without a contiguous-id mapping, predicted classes are the dataset's own ids:
        an id the dataset lacks would be ignored by COCOeval, silently."""
        coco_api = getattr(self, "_coco_api", None)
        if coco_api is None or not coco_results or not self._do_evaluation:
            return  # nothing evaluated here (e.g. a test set): the results json is written as given
        known = set(coco_api.getCatIds())
        if not known:
            return  # a dataset without categories: nothing to check against
        unknown = sorted({r["category_id"] for r in coco_results} - known)
        if unknown:
            raise BadInputError(
                f"Predictions have category ids {unknown[:10]} that dataset '{self._metadata.name}' does not "
                f"have (its ids: {sorted(known)[:20]}); without metadata.thing_dataset_id_to_contiguous_id "
                "predicted classes must be the dataset's category ids."
            )

    def _check_task_inputs(self, coco_results: List[Dict[str, Any]], tasks: Sequence[str]) -> None:
        """Each requested task needs its field in every prediction (masks, keypoints)."""
        needs = {"segm": ("segmentation", "pred_masks"), "keypoints": ("keypoints", "pred_keypoints")}
        for task in tasks:
            if task not in needs:
                continue
            key, field = needs[task]
            missing = sum(1 for r in coco_results if key not in r)
            if missing:
                raise BadInputError(
                    f"COCOEvaluator of '{self._metadata.name}': task '{task}' needs predictions with {field}, "
                    f"but {missing} of {len(coco_results)} predicted instances have none; evaluate with "
                    f"tasks={tuple(t for t in tasks if t != task) or ('bbox',)} or use a model that predicts them."
                )

    def _eval_predictions(self, predictions: List[Dict[str, Any]], img_ids: Optional[Sequence[int]] = None) -> None:
        """COCO AP of every task on the predicted instances, into ``self._results``."""
        self._logger.info("Preparing results for COCO format ...")
        # Copies: unmapping the category ids must not change the kept predictions.
        coco_results = [dict(r) for r in itertools.chain(*[x["instances"] for x in predictions])]
        tasks = self._tasks or self._tasks_from_predictions(coco_results)
        self._check_task_inputs(coco_results, tasks)
        self._unmap_category_ids(coco_results)
        self._write_results_json(coco_results, "coco_instances_results.json")
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return

        self._logger.info(
            "Evaluating predictions with %s COCO API...", "unofficial (C++)" if self._use_fast_impl else "official"
        )
        for task in sorted(tasks):
            coco_eval = (
                _evaluate_predictions_on_coco(
                    self._coco_api,
                    coco_results,
                    task,
                    kpt_oks_sigmas=self._kpt_oks_sigmas,
                    cocoeval_fn=COCOeval_opt if self._use_fast_impl else COCOeval,
                    img_ids=img_ids,
                    max_dets_per_image=self._max_dets_per_image,
                )
                if len(coco_results) > 0
                else None  # cocoapi cannot handle empty results
            )
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )

    def _derive_coco_results(
        self, coco_eval: Optional[COCOeval], iou_type: str, class_names: Optional[List[str]] = None
    ) -> Dict[str, float]:
        """The summary metrics of ``coco_eval`` (percent; NaN where undefined) plus
        ``AP-<class>`` for each class when there is more than one."""
        metrics = {
            "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
            "segm": ["AP", "AP50", "AP75", "APs", "APm", "APl"],
            "keypoints": ["AP", "AP50", "AP75", "APm", "APl"],
        }[iou_type]
        if coco_eval is None:
            self._logger.warning("No predictions from the model!")
            return {metric: float("nan") for metric in metrics}

        # COCOeval marks undefined metrics with -1.
        results = {
            metric: float(coco_eval.stats[idx] * 100 if coco_eval.stats[idx] >= 0 else "nan")
            for idx, metric in enumerate(metrics)
        }
        self._logger.info("Evaluation results for {}: \n".format(iou_type) + create_small_table(results))
        if not np.isfinite(sum(results.values())):
            self._logger.info("Some metrics cannot be computed and is shown as NaN.")
        if not class_names or len(class_names) <= 1:
            return results

        per_category = _per_category_ap(coco_eval.eval["precision"], class_names)
        self._logger.info("Per-category {} AP: \n".format(iou_type) + _per_category_table(per_category))
        results.update({"AP-" + name: ap for name, ap in per_category})
        return results


def _check_tasks(tasks: Any, logger: logging.Logger) -> Optional[Tuple[str, ...]]:
    if tasks is None:
        return None
    if not isinstance(tasks, (list, tuple, set)):
        # Old code passed the config here; tasks are then taken from the predictions.
        logger.warning("COCOEvaluator: tasks should be a list of task names, got %s; inferring them.", type(tasks))
        return None
    unknown = set(tasks) - set(_TASKS)
    if unknown:
        raise ValueError(f"COCOEvaluator: tasks must be among {_TASKS}, got {sorted(unknown)}")
    return tuple(tasks)


def _convert_dataset(dataset_name: str, output_dir: Optional[str], allow_cached: bool, logger: logging.Logger) -> str:
    """Write the registered dataset ``dataset_name`` as a COCO json in ``output_dir``."""
    if output_dir is None:
        raise ValueError("output_dir must be provided to COCOEvaluator for datasets not in COCO format.")
    from detectron2.data.datasets.coco import convert_to_coco_json

    logger.info("Trying to convert '%s' to COCO format ...", dataset_name)
    cache_path = os.path.join(output_dir, f"{dataset_name}_coco_format.json")
    convert_to_coco_json(dataset_name, cache_path, allow_cached=allow_cached)
    return cache_path


def _per_category_ap(precisions: np.ndarray, class_names: List[str]) -> List[Tuple[str, float]]:
    """AP of each class from COCOeval's precision table (iou, recall, class, area, maxdet),
    at all areas and the largest maxDets; NaN for classes without ground truth."""
    if len(class_names) != precisions.shape[2]:
        raise ValueError(
            f"{len(class_names)} class names but COCOeval evaluated {precisions.shape[2]} categories"
        )
    per_category = []
    for idx, name in enumerate(class_names):
        precision = precisions[:, :, idx, 0, -1]
        precision = precision[precision > -1]
        ap = np.mean(precision) if precision.size else float("nan")
        per_category.append(("{}".format(name), float(ap * 100)))
    return per_category


def _per_category_table(per_category: List[Tuple[str, float]]) -> str:
    """Up to three (category, AP) pairs per row."""
    num_cols = min(6, len(per_category) * 2)
    flat = list(itertools.chain(*per_category))
    rows = itertools.zip_longest(*[flat[i::num_cols] for i in range(num_cols)])
    return tabulate(
        rows, tablefmt="pipe", floatfmt=".3f", headers=["category", "AP"] * (num_cols // 2), numalign="left"
    )


def instances_to_coco_json(instances: Instances, img_id: int) -> List[Dict[str, Any]]:
    """One image's predicted ``Instances`` as COCO result dicts.

    Boxes become XYWH, masks (``pred_masks``) RLEs with str counts, keypoints
    (``pred_keypoints``) flat [x, y, score, ...] lists. Keypoint coordinates are shifted
    by -0.5: the data loader adds 0.5 to COCO's integer pixel indices to make them
    continuous coordinates, and results must be in the annotations' convention.
    """
    num_instance = len(instances)
    if num_instance == 0:
        return []
    boxes = BoxMode.convert(instances.pred_boxes.tensor.numpy(), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS).tolist()
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()

    rles = None
    if instances.has("pred_masks"):
        rles = [_encode_mask(mask) for mask in instances.pred_masks]
    keypoints = None
    if instances.has("pred_keypoints"):
        keypoints = torch.as_tensor(instances.pred_keypoints).clone()  # not in place on the caller's
        keypoints[..., :2] -= 0.5

    results = []
    for k in range(num_instance):
        result = {"image_id": img_id, "category_id": classes[k], "bbox": boxes[k], "score": scores[k]}
        if rles is not None:
            result["segmentation"] = rles[k]
        if keypoints is not None:
            result["keypoints"] = keypoints[k].flatten().tolist()
        results.append(result)
    return results


def _encode_mask(mask: Any) -> Dict[str, Any]:
    """A binary HxW mask as a COCO RLE whose counts are a str (json-serialisable)."""
    array = np.asarray(mask, dtype=np.uint8)
    rle = mask_util.encode(np.asfortranarray(array[:, :, None]))[0]
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


# Area ranges in pixels^2 (COCO's, plus finer large ranges) for proposal recall.
_PROPOSAL_AREAS = {
    "all": (0, 1e5**2),
    "small": (0, 32**2),
    "medium": (32**2, 96**2),
    "large": (96**2, 1e5**2),
    "96-128": (96**2, 128**2),
    "128-256": (128**2, 256**2),
    "256-512": (256**2, 512**2),
    "512-inf": (512**2, 1e5**2),
}


def _evaluate_box_proposals(
    dataset_predictions: List[Dict[str, Any]],
    coco_api: COCO,
    thresholds: Optional[torch.Tensor] = None,
    area: str = "all",
    limit: Optional[int] = None,
) -> Dict[str, Any]:
    """Recall of the top ``limit`` proposals of each image at IoU ``thresholds`` (0.5:0.95
    by default) against the non-crowd ground truth in the ``area`` range; ``ar`` is the
    mean. Each ground-truth box is matched greedily to at most one proposal."""

    def ground_truth(image_id: int) -> List[Dict[str, Any]]:
        anno = coco_api.loadAnns(coco_api.getAnnIds(imgIds=image_id))
        return [obj for obj in anno if obj["iscrowd"] == 0]

    return _proposal_recall(dataset_predictions, ground_truth, thresholds, area, limit)


def _proposal_recall(
    dataset_predictions: List[Dict[str, Any]],
    ground_truth: Callable[[int], List[Dict[str, Any]]],
    thresholds: Optional[torch.Tensor],
    area: str,
    limit: Optional[int],
) -> Dict[str, Any]:
    """Proposal recall against the annotations (``bbox`` XYWH, ``area``) that
    ``ground_truth(image_id)`` returns."""
    if area not in _PROPOSAL_AREAS:
        raise ValueError(f"area must be one of {list(_PROPOSAL_AREAS)}, got {area!r}")
    area_range = _PROPOSAL_AREAS[area]
    gt_overlaps = []
    num_pos = 0
    for prediction_dict in dataset_predictions:
        predictions = prediction_dict["proposals"]
        predictions = predictions[predictions.objectness_logits.sort(descending=True)[1]]
        anno = ground_truth(prediction_dict["image_id"])
        gt_boxes = torch.as_tensor(
            [BoxMode.convert(obj["bbox"], BoxMode.XYWH_ABS, BoxMode.XYXY_ABS) for obj in anno], dtype=torch.float32
        ).reshape(-1, 4)
        gt_areas = torch.as_tensor([obj["area"] for obj in anno], dtype=torch.float32)
        if len(gt_boxes) == 0 or len(predictions) == 0:
            continue
        in_range = (gt_areas >= area_range[0]) & (gt_areas <= area_range[1])
        gt_boxes = Boxes(gt_boxes[in_range])
        num_pos += len(gt_boxes)
        if len(gt_boxes) == 0:
            continue
        if limit is not None and len(predictions) > limit:
            predictions = predictions[:limit]
        gt_overlaps.append(_greedy_max_overlaps(pairwise_iou(predictions.proposal_boxes, gt_boxes)))

    gt_overlaps = torch.cat(gt_overlaps, dim=0) if gt_overlaps else torch.zeros(0, dtype=torch.float32)
    gt_overlaps, _ = torch.sort(gt_overlaps)
    if thresholds is None:
        thresholds = torch.arange(0.5, 0.95 + 1e-5, 0.05, dtype=torch.float32)
    recalls = torch.zeros_like(thresholds)
    for i, t in enumerate(thresholds):
        recalls[i] = (gt_overlaps >= t).float().sum() / float(num_pos)
    return {
        "ar": recalls.mean(),
        "recalls": recalls,
        "thresholds": thresholds,
        "gt_overlaps": gt_overlaps,
        "num_pos": num_pos,
    }


def _proposal_data(predictions: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The proposals of all images, as saved to box_proposals.pkl."""
    return {
        "boxes": [p["proposals"].proposal_boxes.tensor.numpy() for p in predictions],
        "objectness_logits": [p["proposals"].objectness_logits.numpy() for p in predictions],
        "ids": [p["image_id"] for p in predictions],
        "bbox_mode": BoxMode.XYXY_ABS.value,
    }


def _proposal_metrics(recall_fn: Callable[..., Dict[str, Any]]) -> Dict[str, float]:
    """AR@100 and AR@1000 overall and per COCO area, in percent."""
    res = {}
    for limit in (100, 1000):
        for area, suffix in (("all", ""), ("small", "s"), ("medium", "m"), ("large", "l")):
            stats = recall_fn(area=area, limit=limit)
            res["AR{}@{:d}".format(suffix, limit)] = float(stats["ar"].item() * 100)
    return res


def _greedy_max_overlaps(overlaps: torch.Tensor) -> torch.Tensor:
    """IoU each ground truth (column) gets when the best remaining (proposal, gt) pair is
    matched repeatedly; unmatched ground truths keep 0."""
    overlaps = overlaps.clone()
    num_gt = overlaps.shape[1]
    matched = torch.zeros(num_gt)
    for j in range(min(overlaps.shape[0], num_gt)):
        best_per_gt, best_proposal = overlaps.max(dim=0)
        gt_ovr, gt_ind = best_per_gt.max(dim=0)
        box_ind = best_proposal[gt_ind]
        matched[j] = overlaps[box_ind, gt_ind]
        overlaps[box_ind, :] = -1
        overlaps[:, gt_ind] = -1
    return matched


def _evaluate_predictions_on_coco(
    coco_gt: COCO,
    coco_results: List[Dict[str, Any]],
    iou_type: str,
    kpt_oks_sigmas: Optional[Sequence[float]] = None,
    cocoeval_fn: Type[COCOeval] = COCOeval_opt,
    img_ids: Optional[Sequence[int]] = None,
    max_dets_per_image: Optional[List[int]] = None,
) -> COCOeval:
    """Run ``cocoeval_fn`` (evaluate, accumulate, summarize) on non-empty results."""
    if len(coco_results) == 0:
        raise ValueAssertionError("_evaluate_predictions_on_coco needs at least one result")
    if iou_type == "segm":
        # With a bbox in the results cocoapi takes the box area as the instance area;
        # without it, the mask area decides small/medium/large, as for the ground truth.
        coco_results = [{k: v for k, v in c.items() if k != "bbox"} for c in coco_results]

    coco_dt = coco_gt.loadRes(coco_results)
    if max_dets_per_image is None:
        max_dets_per_image = [1, 10, 100]
    elif len(max_dets_per_image) < 3:
        raise ValueError("COCOeval requires maxDets (and max_dets_per_image) to have length at least 3")
    if max_dets_per_image[2] != 100:
        cocoeval_fn = _with_max_dets_summary(cocoeval_fn)
    coco_eval = cocoeval_fn(coco_gt, coco_dt, iou_type)
    if iou_type != "keypoints":
        coco_eval.params.maxDets = list(max_dets_per_image)
    if img_ids is not None:
        coco_eval.params.imgIds = list(img_ids)

    if iou_type == "keypoints":
        _set_keypoint_sigmas(coco_eval, coco_gt, coco_results, kpt_oks_sigmas)

    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return coco_eval


def _set_keypoint_sigmas(coco_eval: COCOeval, coco_gt: COCO, coco_results: List[Dict[str, Any]], sigmas) -> None:
    if sigmas:
        coco_eval.params.kpt_oks_sigmas = np.array(sigmas)
    num_keypoints_dt = len(coco_results[0]["keypoints"]) // 3
    num_keypoints_gt = len(next(iter(coco_gt.anns.values()))["keypoints"]) // 3
    num_keypoints_oks = len(coco_eval.params.kpt_oks_sigmas)
    if not num_keypoints_oks == num_keypoints_dt == num_keypoints_gt:
        raise ValueAssertionError(
            f"[COCOEvaluator] Prediction contain {num_keypoints_dt} keypoints. Ground truth contains "
            f"{num_keypoints_gt} keypoints. The length of cfg.TEST.KEYPOINT_OKS_SIGMAS is "
            f"{num_keypoints_oks}. They have to agree with each other. For meaning of OKS, please "
            "refer to http://cocodataset.org/#keypoints-eval."
        )


class _MaxDetsSummary:
    """COCOeval's summary with the last maxDets (not a hard-coded 100) in the AP rows."""

    def summarize(self) -> None:
        if not self.eval:
            raise RuntimeError("Please run accumulate() first")
        if self.params.iouType in ("segm", "bbox"):
            self.stats = self._summarize_detections()
        else:
            super().summarize()  # keypoints keep their 20 detections per image

    def _summarize_one(self, ap: bool, iou_thr: Optional[float] = None, area: str = "all", max_dets: int = 100):
        p = self.params
        a = [i for i, name in enumerate(p.areaRngLbl) if name == area]
        m = [i for i, d in enumerate(p.maxDets) if d == max_dets]
        table = self.eval["precision"] if ap else self.eval["recall"]
        if iou_thr is not None:
            table = table[np.where(np.isclose(iou_thr, p.iouThrs))[0]]
        table = table[:, :, :, a, m] if ap else table[:, :, a, m]
        valid = table[table > -1]
        value = -1.0 if valid.size == 0 else float(np.mean(valid))
        iou = "{:0.2f}:{:0.2f}".format(p.iouThrs[0], p.iouThrs[-1]) if iou_thr is None else "{:0.2f}".format(iou_thr)
        title, kind = ("Average Precision", "(AP)") if ap else ("Average Recall", "(AR)")
        print(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d} ] = {value:0.3f}")
        return value

    def _summarize_detections(self) -> np.ndarray:
        max_dets = self.params.maxDets
        rows = [
            (True, None, "all", max_dets[2]),
            (True, 0.5, "all", max_dets[2]),
            (True, 0.75, "all", max_dets[2]),
            (True, None, "small", max_dets[2]),
            (True, None, "medium", max_dets[2]),
            (True, None, "large", max_dets[2]),
            (False, None, "all", max_dets[0]),
            (False, None, "all", max_dets[1]),
            (False, None, "all", max_dets[2]),
            (False, None, "small", max_dets[2]),
            (False, None, "medium", max_dets[2]),
            (False, None, "large", max_dets[2]),
        ]
        return np.array([self._summarize_one(*row) for row in rows])


class COCOevalMaxDets(_MaxDetsSummary, COCOeval):
    """pycocotools' COCOeval whose summary uses ``params.maxDets[2]`` detections."""


def _with_max_dets_summary(cocoeval_fn: Type[COCOeval]) -> Type[COCOeval]:
    if cocoeval_fn is COCOeval:
        return COCOevalMaxDets
    return type(cocoeval_fn.__name__ + "MaxDets", (_MaxDetsSummary, cocoeval_fn), {})

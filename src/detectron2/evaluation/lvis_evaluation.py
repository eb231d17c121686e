"""LVIS box / mask AP (needs the ``lvis`` package) and proposal recall on LVIS."""
import contextlib
import functools
import itertools
import logging
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from ._optional import metadata_of, require
from .coco_evaluation import _InstancesEvaluator, _proposal_recall

__all__ = ["LVISEvaluator"]

_PIP_NAME = "lvis"


class LVISEvaluator(_InstancesEvaluator):
    """AP (with the rare/common/frequent split APr/APc/APf) of boxes and masks on an LVIS
    dataset (metadata ``json_file`` in LVIS format), and AR of box proposals."""

    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Sequence[str]] = None,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        *,
        max_dets_per_image: Optional[int] = None,
    ):
        """
        Args:
            dataset_name: a registered dataset whose metadata has ``json_file``.
            tasks: "bbox" and/or "segm"; None infers them from the predictions.
            distributed: gather the predictions of all ranks and evaluate on rank 0.
            output_dir: where predictions and ``lvis_instances_results.json`` are written.
            max_dets_per_image: detections kept per image (LVIS's official value, 300,
                when None).
        """
        lvis = require("lvis", "LVISEvaluator", _PIP_NAME)
        self._logger = logging.getLogger(__name__)
        if tasks is not None and not isinstance(tasks, (list, tuple, set)):
            self._logger.warning("LVISEvaluator: tasks should be a list of task names; inferring them.")
            tasks = None
        self._tasks = None if tasks is None else tuple(tasks)
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets_per_image = max_dets_per_image
        self._cpu_device = torch.device("cpu")
        self._metadata = metadata_of(dataset_name)
        json_file = PathManager.get_local_path(self._metadata.json_file)
        self._lvis_api = lvis.LVIS(json_file)
        # Test sets come without annotations: then predictions are only written out.
        self._do_evaluation = len(self._lvis_api.get_ann_ids()) > 0

    def evaluate(self) -> Dict[str, Any]:
        """Metrics over all ranks' predictions (on rank 0; other ranks get {})."""
        return self._evaluate()

    def _proposal_recall(self, predictions: List[Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        return functools.partial(_evaluate_box_proposals, predictions, self._lvis_api)

    def _tasks_from_predictions(self, predictions: List[Dict[str, Any]]) -> Tuple[str, ...]:
        for pred in predictions:
            if "segmentation" in pred:
                return ("bbox", "segm")
        return ("bbox",)

    def _eval_predictions(self, predictions: List[Dict[str, Any]], **kwargs: Any) -> None:
        self._logger.info("Preparing results in the LVIS format ...")
        lvis_results = [dict(r) for r in itertools.chain(*[x["instances"] for x in predictions])]
        tasks = self._tasks or self._tasks_from_predictions(lvis_results)
        if hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            # LVIS evaluation of a dataset with its own category ids (e.g. COCO's)
            reverse = {v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()}
            for result in lvis_results:
                result["category_id"] = reverse[result["category_id"]]
        else:
            for result in lvis_results:
                result["category_id"] += 1  # LVIS category ids are the 0-based classes + 1

        self._write_results_json(lvis_results, "lvis_instances_results.json")
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return

        self._logger.info("Evaluating predictions ...")
        for task in sorted(tasks):
            self._results[task] = _evaluate_predictions_on_lvis(
                self._lvis_api,
                lvis_results,
                task,
                max_dets_per_image=self._max_dets_per_image,
                class_names=self._metadata.get("thing_classes"),
            )


def _evaluate_box_proposals(
    dataset_predictions: List[Dict[str, Any]],
    lvis_api: Any,
    thresholds: Optional[torch.Tensor] = None,
    area: str = "all",
    limit: Optional[int] = None,
) -> Dict[str, Any]:
    """Proposal recall as in the COCO evaluator; LVIS has no crowd annotations."""

    def ground_truth(image_id: int) -> List[Dict[str, Any]]:
        return lvis_api.load_anns(lvis_api.get_ann_ids(img_ids=[image_id]))

    return _proposal_recall(dataset_predictions, ground_truth, thresholds, area, limit)


@contextlib.contextmanager
def _numpy_float_alias() -> Iterator[None]:
    """lvis 0.5.3 (its latest release) uses ``np.float``, which numpy 1.24 removed; give
    it the builtin it aliased while LVISEval runs."""
    if "float" in np.__dict__:
        yield
        return
    np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del np.float


def _evaluate_predictions_on_lvis(
    lvis_gt: Any,
    lvis_results: List[Dict[str, Any]],
    iou_type: str,
    max_dets_per_image: Optional[int] = None,
    class_names: Optional[List[str]] = None,
) -> Dict[str, float]:
    """LVISEval's AP, AP50, AP75, APs/m/l and APr/c/f, in percent."""
    metrics = {
        "bbox": ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"],
        "segm": ["AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf"],
    }[iou_type]
    logger = logging.getLogger(__name__)
    if len(lvis_results) == 0:
        logger.warning("No predictions from the model!")
        return {metric: float("nan") for metric in metrics}
    if iou_type == "segm":
        # Without the box, the mask area decides small/medium/large (as for COCO).
        lvis_results = [{k: v for k, v in c.items() if k != "bbox"} for c in lvis_results]
    if max_dets_per_image is None:
        max_dets_per_image = 300  # LVIS's official limit

    lvis = require("lvis", "LVISEvaluator", _PIP_NAME)
    logger.info("Evaluating with max detections per image = %d", max_dets_per_image)
    results_api = lvis.LVISResults(lvis_gt, lvis_results, max_dets=max_dets_per_image)
    lvis_eval = lvis.LVISEval(lvis_gt, results_api, iou_type)
    with _numpy_float_alias():
        lvis_eval.run()
    lvis_eval.print_results()
    all_results = lvis_eval.get_results()
    results = {metric: float(all_results[metric] * 100) for metric in metrics}
    logger.info("Evaluation results for {}: \n".format(iou_type) + create_small_table(results))
    return results

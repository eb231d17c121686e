"""Cityscapes instance / semantic segmentation metrics through cityscapesscripts.

The official scripts read prediction files from a directory: ``process`` writes them
(in the scripts' formats) to a temporary directory shared by the ranks of one machine,
and ``evaluate`` runs the scripts on rank 0.
"""
import glob
import importlib
import logging
import os
import tempfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from PIL import Image

from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ._optional import metadata_of, require
from .evaluator import DatasetEvaluator

__all__ = ["CityscapesInstanceEvaluator", "CityscapesSemSegEvaluator"]

_PIP_NAME = "cityscapesscripts"


class CityscapesEvaluator(DatasetEvaluator):
    """Common part: the metadata (``gt_dir``, class names) and the results directory."""

    def __init__(self, dataset_name: str):
        """
        Args:
            dataset_name: a registered Cityscapes dataset (metadata ``gt_dir``).
        """
        require("cityscapesscripts", type(self).__name__, _PIP_NAME)
        self._metadata = metadata_of(dataset_name)
        self._cpu_device = torch.device("cpu")
        self._logger = logging.getLogger(__name__)

    def reset(self) -> None:
        self._working_dir = tempfile.TemporaryDirectory(prefix="cityscapes_eval_")
        self._temp_dir = self._working_dir.name
        if comm.get_local_size() != comm.get_world_size():
            raise RuntimeError("CityscapesEvaluator currently do not work with multiple machines.")
        # Every rank writes into rank 0's directory.
        self._temp_dir = comm.all_gather(self._temp_dir)[0]
        if self._temp_dir != self._working_dir.name:
            self._working_dir.cleanup()
        self._logger.info("Writing cityscapes results to temporary directory %s ...", self._temp_dir)

    def _ground_truth_files(self, pattern: str) -> List[str]:
        gt_dir = PathManager.get_local_path(self._metadata.gt_dir)
        files = glob.glob(os.path.join(gt_dir, "*", pattern))
        if not files:
            raise FileNotFoundError(f"Cannot find any ground truth images to use for evaluation in {gt_dir}/*/{pattern}")
        return files

    def _script(self, name: str) -> Optional[Any]:
        """After all ranks wrote their files: the evaluation script module ``name`` with
        its options set, on rank 0; None on the other ranks."""
        comm.synchronize()
        if comm.get_rank() > 0:
            return None
        cityscapes_eval = importlib.import_module("cityscapesscripts.evaluation." + name)
        self._logger.info("Evaluating results under %s ...", self._temp_dir)
        # The scripts keep their options in a module-level ``args``.
        cityscapes_eval.args.predictionPath = os.path.abspath(self._temp_dir)
        cityscapes_eval.args.predictionWalk = None
        cityscapes_eval.args.JSONOutput = False
        cityscapes_eval.args.colorized = False
        return cityscapes_eval


class CityscapesInstanceEvaluator(CityscapesEvaluator):
    """Mask AP and AP50 with the official instance-level evaluation script."""

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        from cityscapesscripts.helpers.labels import name2label

        for inp, out in zip(inputs, outputs):
            basename = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            pred_txt = os.path.join(self._temp_dir, basename + "_pred.txt")
            # The script expects a prediction file for every ground-truth image.
            with open(pred_txt, "w") as fout:
                if "instances" not in out:
                    continue
                instances = out["instances"].to(self._cpu_device)
                for i in range(len(instances)):
                    class_name = self._metadata.thing_classes[int(instances.pred_classes[i])]
                    class_id = name2label[class_name].id
                    score = float(instances.scores[i])
                    mask = instances.pred_masks[i].numpy().astype(np.uint8)
                    png_filename = os.path.join(self._temp_dir, basename + "_{}_{}.png".format(i, class_name))
                    Image.fromarray(mask * 255).save(png_filename)
                    fout.write("{} {} {}\n".format(os.path.basename(png_filename), class_id, score))

    def evaluate(self) -> Optional[Dict[str, Any]]:
        cityscapes_eval = self._script("evalInstanceLevelSemanticLabeling")
        if cityscapes_eval is None:
            return None
        cityscapes_eval.args.gtInstancesFile = os.path.join(self._temp_dir, "gtInstances.json")
        gt_files = self._ground_truth_files("*_gtFine_instanceIds.png")
        predictions = [cityscapes_eval.getPrediction(gt, cityscapes_eval.args) for gt in gt_files]
        results = cityscapes_eval.evaluateImgLists(predictions, gt_files, cityscapes_eval.args)["averages"]
        self._working_dir.cleanup()
        return OrderedDict({"segm": {"AP": results["allAp"] * 100, "AP50": results["allAp50%"] * 100}})


class CityscapesSemSegEvaluator(CityscapesEvaluator):
    """IoU / iIoU over classes and categories with the official pixel-level script."""

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        from cityscapesscripts.helpers.labels import trainId2label

        for inp, out in zip(inputs, outputs):
            basename = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            pred_filename = os.path.join(self._temp_dir, basename + "_pred.png")
            train_ids = out["sem_seg"].argmax(dim=0).to(self._cpu_device).numpy()
            # The script wants label ids; train ids of classes not evaluated stay 255.
            pred = np.full(train_ids.shape, 255, dtype=np.uint8)
            for train_id, label in trainId2label.items():
                if not label.ignoreInEval:
                    pred[train_ids == train_id] = label.id
            Image.fromarray(pred).save(pred_filename)

    def evaluate(self) -> Optional[Dict[str, Any]]:
        cityscapes_eval = self._script("evalPixelLevelSemanticLabeling")
        if cityscapes_eval is None:
            return None
        gt_files = self._ground_truth_files("*_gtFine_labelIds.png")
        predictions = [cityscapes_eval.getPrediction(cityscapes_eval.args, gt) for gt in gt_files]
        results = cityscapes_eval.evaluateImgLists(predictions, gt_files, cityscapes_eval.args)
        self._working_dir.cleanup()
        return OrderedDict(
            {
                "sem_seg": {
                    "IoU": 100.0 * results["averageScoreClasses"],
                    "iIoU": 100.0 * results["averageScoreInstClasses"],
                    "IoU_sup": 100.0 * results["averageScoreCategories"],
                    "iIoU_sup": 100.0 * results["averageScoreInstCategories"],
                }
            }
        )

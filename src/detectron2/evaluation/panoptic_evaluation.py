"""COCO panoptic quality (PQ, SQ, RQ) through panopticapi."""
import contextlib
import io
import itertools
import json
import logging
import os
import tempfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import numpy as np
from PIL import Image
from tabulate import tabulate

from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ._optional import metadata_of, require
from .evaluator import DatasetEvaluator

__all__ = ["COCOPanopticEvaluator"]

logger = logging.getLogger(__name__)

_PIP_NAME = "git+https://github.com/cocodataset/panopticapi.git"


class COCOPanopticEvaluator(DatasetEvaluator):
    """PQ / SQ / RQ overall, for things and for stuff, of ``output["panoptic_seg"]``
    against the dataset's COCO panoptic annotations (metadata ``panoptic_json``,
    ``panoptic_root``, ``thing_dataset_id_to_contiguous_id``,
    ``stuff_dataset_id_to_contiguous_id``; ``label_divisor`` for outputs without
    segments_info)."""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None):
        """
        Args:
            dataset_name: a registered COCO-panoptic-format dataset.
            output_dir: where ``predictions.json`` is kept (a temporary directory if None).
        """
        require("panopticapi.evaluation", "COCOPanopticEvaluator", _PIP_NAME)
        self._metadata = metadata_of(dataset_name)
        self._thing_contiguous_id_to_dataset_id = {
            v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()
        }
        self._stuff_contiguous_id_to_dataset_id = {
            v: k for k, v in self._metadata.stuff_dataset_id_to_contiguous_id.items()
        }
        self._output_dir = output_dir
        if self._output_dir is not None:
            PathManager.mkdirs(self._output_dir)

    def reset(self) -> None:
        self._predictions: List[Dict[str, Any]] = []

    def _convert_category_id(self, segment_info: Dict[str, Any]) -> Dict[str, Any]:
        """A segment's contiguous class (thing or stuff) to the dataset's category id."""
        isthing = segment_info.pop("isthing", None)
        if isthing is None:
            return segment_info  # the model already produced dataset category ids
        mapping = self._thing_contiguous_id_to_dataset_id if isthing else self._stuff_contiguous_id_to_dataset_id
        segment_info["category_id"] = mapping[segment_info["category_id"]]
        return segment_info

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Keep each prediction as a panopticapi PNG (segment id as RGB) and its segments."""
        from panopticapi.utils import id2rgb

        for inp, out in zip(inputs, outputs):
            panoptic_img, segments_info = out["panoptic_seg"]
            panoptic_img = panoptic_img.cpu().numpy()
            if segments_info is None:
                panoptic_img, segments_info = self._segments_from_labels(panoptic_img)
            file_name = os.path.basename(inp["file_name"])
            file_name_png = os.path.splitext(file_name)[0] + ".png"
            with io.BytesIO() as buf:
                Image.fromarray(id2rgb(panoptic_img)).save(buf, format="PNG")
                self._predictions.append(
                    {
                        "image_id": inp["image_id"],
                        "file_name": file_name_png,
                        "png_string": buf.getvalue(),
                        "segments_info": [self._convert_category_id(dict(x)) for x in segments_info],
                    }
                )

    def _segments_from_labels(self, panoptic_img: np.ndarray):
        """Segments of an image of ``class * label_divisor + instance`` labels (-1: void).

        panopticapi reserves id 0 for void, so every id is shifted by one.
        """
        label_divisor = self._metadata.label_divisor
        thing_ids = set(self._metadata.thing_dataset_id_to_contiguous_id.values())
        segments_info = []
        for panoptic_label in np.unique(panoptic_img):
            if panoptic_label == -1:
                continue
            pred_class = int(panoptic_label) // label_divisor
            segments_info.append(
                {"id": int(panoptic_label) + 1, "category_id": pred_class, "isthing": pred_class in thing_ids}
            )
        return panoptic_img + 1, segments_info

    def evaluate(self) -> Optional[Dict[str, Any]]:
        """``{"panoptic_seg": {"PQ", "SQ", "RQ", "PQ_th", ..., "RQ_st"}}`` in percent."""
        comm.synchronize()
        predictions = list(itertools.chain(*comm.gather(self._predictions)))
        if not comm.is_main_process():
            return None
        from panopticapi.evaluation import pq_compute

        gt_json = PathManager.get_local_path(self._metadata.panoptic_json)
        gt_folder = PathManager.get_local_path(self._metadata.panoptic_root)
        with tempfile.TemporaryDirectory(prefix="panoptic_eval") as pred_dir:
            logger.info("Writing all panoptic predictions to %s ...", pred_dir)
            annotations = []
            for p in predictions:
                with open(os.path.join(pred_dir, p["file_name"]), "wb") as f:
                    f.write(p["png_string"])
                annotations.append({k: v for k, v in p.items() if k != "png_string"})
            with open(gt_json) as f:
                json_data = json.load(f)
            json_data["annotations"] = annotations
            predictions_json = os.path.join(self._output_dir or pred_dir, "predictions.json")
            with PathManager.open(predictions_json, "w") as f:
                f.write(json.dumps(json_data))
            with contextlib.redirect_stdout(io.StringIO()):  # pq_compute prints per-core progress
                pq_res = pq_compute(
                    gt_json, PathManager.get_local_path(predictions_json), gt_folder=gt_folder, pred_folder=pred_dir
                )

        res = {}
        for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
            for metric in ("pq", "sq", "rq"):
                res[metric.upper() + suffix] = 100 * pq_res[group][metric]
        _print_panoptic_results(pq_res)
        return OrderedDict({"panoptic_seg": res})


def _print_panoptic_results(pq_res: Dict[str, Dict[str, float]]) -> None:
    headers = ["", "PQ", "SQ", "RQ", "#categories"]
    data = [
        [name] + [pq_res[name][k] * 100 for k in ("pq", "sq", "rq")] + [pq_res[name]["n"]]
        for name in ("All", "Things", "Stuff")
    ]
    table = tabulate(data, headers=headers, tablefmt="pipe", floatfmt=".3f", stralign="center", numalign="center")
    logger.info("Panoptic Evaluation Results:\n" + table)

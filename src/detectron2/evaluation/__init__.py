"""Evaluation of models on datasets: the evaluator API, COCO / LVIS / VOC / Cityscapes /
panoptic / semantic segmentation evaluators and result-checking helpers.

The C++-backed COCO evaluation lives in ``detectron2.evaluation.fast_eval_api``
(``COCOeval_opt``), imported from there as upstream code does.
"""
from .cityscapes_evaluation import CityscapesInstanceEvaluator, CityscapesSemSegEvaluator
from .coco_evaluation import COCOEvaluator
from .evaluator import DatasetEvaluator, DatasetEvaluators, inference_context, inference_on_dataset
from .lvis_evaluation import LVISEvaluator
from .panoptic_evaluation import COCOPanopticEvaluator
from .pascal_voc_evaluation import PascalVOCDetectionEvaluator
from .rotated_coco_evaluation import RotatedCOCOEvaluator
from .sem_seg_evaluation import SemSegEvaluator
from .testing import print_csv_format, verify_results

__all__ = [k for k in globals().keys() if not k.startswith("_")]

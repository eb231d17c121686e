"""The evaluator for a registered dataset, chosen by its ``evaluator_type`` metadata
(what DefaultTrainer.build_evaluator returns unless overridden)."""
from typing import List

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog


def evaluator_for_dataset(cfg: CfgNode, dataset_name: str, output_folder: str):
    """A DatasetEvaluator (or DatasetEvaluators) for ``dataset_name``; None when its
    evaluator_type is unknown or missing."""
    # Imported here: each evaluator module pulls in optional third-party packages.
    from detectron2 import evaluation as ev

    evaluator_type = getattr(MetadataCatalog.get(dataset_name), "evaluator_type", None)
    single = {
        "cityscapes_instance": lambda: ev.CityscapesInstanceEvaluator(dataset_name),
        "cityscapes_sem_seg": lambda: ev.CityscapesSemSegEvaluator(dataset_name),
        "pascal_voc": lambda: ev.PascalVOCDetectionEvaluator(dataset_name),
        "lvis": lambda: ev.LVISEvaluator(dataset_name, output_dir=output_folder),
    }
    if evaluator_type in single:
        return single[evaluator_type]()

    evaluators: List = []
    if evaluator_type in ("sem_seg", "coco_panoptic_seg"):
        evaluators.append(ev.SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder))
    if evaluator_type in ("coco", "coco_panoptic_seg"):
        evaluators.append(ev.COCOEvaluator(dataset_name, output_dir=output_folder))
    if evaluator_type == "coco_panoptic_seg":
        evaluators.append(ev.COCOPanopticEvaluator(dataset_name, output_folder))
    if not evaluators:
        return None
    return evaluators[0] if len(evaluators) == 1 else ev.DatasetEvaluators(evaluators)

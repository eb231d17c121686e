# Switches a COCO ViTDet-style config to LVIS v1: repeat-factor sampling, the LVIS
# evaluator, 1203 classes with sigmoid / federated losses in the given box predictors.
from detectron2.config import LazyCall as L
from detectron2.data.detection_utils import get_fed_loss_cls_weights
from detectron2.data.samplers import RepeatFactorTrainingSampler
from detectron2.evaluation.lvis_evaluation import LVISEvaluator


def to_lvis(dataloader, roi_heads, box_predictors) -> None:
    """Edit the dataloader, roi_heads.num_classes and each predictor in place."""
    dataloader.train.dataset.names = "lvis_v1_train"
    dataloader.train.sampler = L(RepeatFactorTrainingSampler)(
        repeat_factors=L(RepeatFactorTrainingSampler.repeat_factors_from_category_frequency)(
            dataset_dicts="${dataloader.train.dataset}", repeat_thresh=0.001
        )
    )
    dataloader.test.dataset.names = "lvis_v1_val"
    dataloader.evaluator = L(LVISEvaluator)(dataset_name="${..test.dataset.names}", max_dets_per_image=300)
    roi_heads.num_classes = 1203
    for p in box_predictors:
        p.test_score_thresh = 0.02
        p.test_topk_per_image = 300
        p.use_sigmoid_ce = True
        p.use_fed_loss = True
        p.get_fed_loss_cls_weights = lambda: get_fed_loss_cls_weights(dataloader.train.dataset.names, 0.5)

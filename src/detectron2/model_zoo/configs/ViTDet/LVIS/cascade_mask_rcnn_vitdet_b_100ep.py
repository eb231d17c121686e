# ViTDet Cascade Mask R-CNN on LVIS v1: mask_rcnn_vitdet_b_100ep with cascade box heads
# using the sigmoid / federated loss in every stage.
from detectron2.data.detection_utils import get_fed_loss_cls_weights

from ..common.cascade import to_cascade
from .mask_rcnn_vitdet_b_100ep import dataloader, lr_multiplier, model, optimizer, train

to_cascade(
    model.roi_heads,
    test_score_thresh=0.02,
    test_topk_per_image=300,
    use_sigmoid_ce=True,
    use_fed_loss=True,
    get_fed_loss_cls_weights=lambda: get_fed_loss_cls_weights(dataloader.train.dataset.names, 0.5),
)
model.roi_heads.num_classes = 1203

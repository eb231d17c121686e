# ViTDet Cascade Mask R-CNN on COCO: mask_rcnn_vitdet_h_75ep with cascade box heads.
from ..common.cascade import to_cascade
from .mask_rcnn_vitdet_h_75ep import dataloader, lr_multiplier, model, optimizer, train

to_cascade(model.roi_heads, test_score_thresh=0.05)

# Cascade Mask R-CNN, ImageNet-21k MViTv2-B + FPN on LVIS v1, 100 epochs.
from ..COCO.cascade_mask_rcnn_mvitv2_b_in21k_100ep import dataloader, lr_multiplier, model, optimizer, train
from ..common.lvis import to_lvis

to_lvis(dataloader, model.roi_heads, model.roi_heads.box_predictors)

# 100 epochs = 156250 iterations of 64 images over LVIS's 100k images
train.max_iter = 156250
train.eval_period = 30000
lr_multiplier.scheduler.milestones = [138889, 150463]
lr_multiplier.scheduler.num_updates = train.max_iter
lr_multiplier.warmup_length = 250 / train.max_iter

optimizer.lr = 1e-4

# Cascade Mask R-CNN, ImageNet-21k Swin-B + FPN on LVIS v1, 50 epochs.
from ..COCO.cascade_mask_rcnn_swin_b_in21k_50ep import dataloader, lr_multiplier, model, optimizer, train
from ..common.lvis import to_lvis

to_lvis(dataloader, model.roi_heads, model.roi_heads.box_predictors)
model.backbone.bottom_up.drop_path_rate = 0.3

# half of LVIS's 100 epochs (156250 iterations of 64 images)
train.max_iter = 156250 // 2
train.eval_period = 30000
lr_multiplier.scheduler.milestones = [m // 2 for m in [138889, 150463]]
lr_multiplier.scheduler.num_updates = train.max_iter
lr_multiplier.warmup_length = 250 / train.max_iter

optimizer.lr = 1e-4

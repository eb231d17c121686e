from .mask_rcnn_R_101_FPN_100ep_LSJ import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

# 100 -> 200 epochs
train.max_iter = train.max_iter * 2
lr_multiplier.scheduler.milestones = [m * 2 for m in lr_multiplier.scheduler.milestones]
lr_multiplier.scheduler.num_updates = train.max_iter

from .mask_rcnn_regnetx_4gf_dds_FPN_200ep_LSJ import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

# 200 -> 400 epochs
train.max_iter = train.max_iter * 2
lr_multiplier.scheduler.milestones = [m * 2 for m in lr_multiplier.scheduler.milestones]
lr_multiplier.scheduler.num_updates = train.max_iter

# Mask R-CNN R50-FPN trained from scratch for 100 epochs with large-scale jitter (LSJ):
# random 0.1-2.0x rescale and a fixed 1024x1024 crop, SyncBN everywhere, batch 64.
from fvcore.common.param_scheduler import MultiStepParamScheduler

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.layers.batch_norm import NaiveSyncBatchNorm
from detectron2.solver import WarmupParamScheduler

from ..common.data.coco import dataloader
from ..common.models.mask_rcnn_fpn import model
from ..common.optim import SGD as optimizer
from ..common.train import train

# from scratch, in mixed precision
train.init_checkpoint = ""
train.amp.enabled = True
train.ddp.fp16_compression = True
model.backbone.bottom_up.freeze_at = 0

model.backbone.bottom_up.stem.norm = "SyncBN"
model.backbone.bottom_up.stages.norm = "SyncBN"
model.backbone.norm = "SyncBN"
# the heads can see zero RoIs on a GPU, which torch's SyncBatchNorm does not allow;
# the naive version weighs processes by their sample counts instead
model.roi_heads.box_head.conv_norm = lambda c: NaiveSyncBatchNorm(c, stats_mode="N")
model.roi_heads.mask_head.conv_norm = lambda c: NaiveSyncBatchNorm(c, stats_mode="N")

# two convs in the RPN head, 4 convs + 1 FC in the box head
model.proposal_generator.head.conv_dims = [-1, -1]
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]

image_size = 1024
dataloader.train.mapper.augmentations = [
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size)),
    L(T.RandomFlip)(horizontal=True),
]
# crops cut instances: take boxes from the cropped masks
dataloader.train.mapper.recompute_boxes = True
dataloader.train.total_batch_size = 64

# 100 epochs of COCO train2017 (118k images) at 64 images per iteration
train.max_iter = 184375

lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[163889, 177546],
        num_updates=train.max_iter,
    ),
    warmup_length=250 / train.max_iter,
    warmup_factor=0.001,
)

optimizer.lr = 0.1
optimizer.weight_decay = 4e-5

from ..common.models.regnet_dds import pixel_std, regnetx_4gf
from .mask_rcnn_R_50_FPN_100ep_LSJ import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

# RegNetX-4GF from scratch, with SyncBN like the rest of the LSJ model
model.backbone.bottom_up = regnetx_4gf
model.backbone.bottom_up.update(freeze_at=0, norm="SyncBN")
model.pixel_std = pixel_std
train.cudnn_benchmark = True

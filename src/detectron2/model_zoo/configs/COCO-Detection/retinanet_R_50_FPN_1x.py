from ..common.coco_schedule import lr_multiplier_1x as lr_multiplier
from ..common.data.coco import dataloader
from ..common.models.retinanet import model
from ..common.optim import SGD as optimizer
from ..common.train import train

dataloader.train.mapper.use_instance_mask = False  # boxes only
model.backbone.bottom_up.freeze_at = 2
optimizer.lr = 0.01  # half of the R-CNN rate, as in Base-RetinaNet.yaml
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"

from ..common.coco_schedule import lr_multiplier_1x as lr_multiplier
from ..common.data.coco import dataloader
from ..common.models.mask_rcnn_fpn import model
from ..common.models.regnet_dds import pixel_std, regnetx_4gf
from ..common.optim import SGD as optimizer
from ..common.train import train

# RegNetX-4GF in place of the ResNet
model.backbone.bottom_up = regnetx_4gf
model.pixel_std = pixel_std

optimizer.weight_decay = 5e-5
train.init_checkpoint = "https://dl.fbaipublicfiles.com/pycls/dds_baselines/160906383/RegNetX-4.0GF_dds_8gpu.pyth"
# RegNets' grouped convolutions gain from cuDNN's autotuner
train.cudnn_benchmark = True

"""DeepLab (V3 and V3+) semantic segmentation. Importing the package registers its
heads and backbone."""
from .build_solver import build_lr_scheduler
from .config import add_deeplab_config
from .loss import DeepLabCE
from .lr_scheduler import WarmupPolyLR
from .resnet import DeepLabStem, build_resnet_deeplab_backbone
from .semantic_seg import DeepLabV3Head, DeepLabV3PlusHead

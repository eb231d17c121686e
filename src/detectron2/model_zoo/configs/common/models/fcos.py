# FCOS, ResNet-50 + FPN: anchor-free; the RetinaNet model with its anchor parts removed.
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead

from .retinanet import model

model._target_ = FCOS
for key in ("anchor_generator", "box2box_transform", "anchor_matcher", "input_format"):
    del model[key]

# P6/P7 come from P5, not C5 (section 2.3 of arXiv:2006.09214)
model.backbone.top_block.in_feature = "p5"
model.backbone.top_block.in_channels = 256

model.head._target_ = FCOSHead
del model.head.num_anchors
model.head.norm = "GN"

"""Detection models: backbones, anchors, box coding, matching, pooling, postprocessing."""
from detectron2.layers import ShapeSpec

from .anchor_generator import build_anchor_generator, ANCHOR_GENERATOR_REGISTRY
from .backbone import (
    BACKBONE_REGISTRY,
    FPN,
    Backbone,
    RegNet,
    ResNet,
    ResNetBlockBase,
    build_backbone,
    build_resnet_backbone,
    make_stage,
)
from .backbone.fpn import build_resnet_fpn_backbone, build_retinanet_resnet_fpn_backbone
from .backbone.resnet import BasicStem, BottleneckBlock
from .anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
from .box_regression import Box2BoxTransform, Box2BoxTransformRotated, Box2BoxTransformLinear
from .matcher import Matcher
from .poolers import ROIPooler
from .postprocessing import detector_postprocess, sem_seg_postprocess
from .sampling import subsample_labels
from .test_time_augmentation import DatasetMapperTTA, GeneralizedRCNNWithTTA

_EXCLUDE = {"ShapeSpec"}
__all__ = [k for k in globals().keys() if k not in _EXCLUDE and not k.startswith("_")]

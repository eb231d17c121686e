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
from .backbone import ViT, SimpleFeaturePyramid, get_vit_lr_decay_rate, MViT, SwinTransformer
from .anchor_generator import DefaultAnchorGenerator, RotatedAnchorGenerator
from .box_regression import Box2BoxTransform, Box2BoxTransformRotated, Box2BoxTransformLinear
from .matcher import Matcher
from .meta_arch import (
    META_ARCH_REGISTRY,
    SEM_SEG_HEADS_REGISTRY,
    DenseDetector,
    FCOS,
    GeneralizedRCNN,
    PanopticFPN,
    ProposalNetwork,
    RetinaNet,
    SemanticSegmentor,
    build_model,
    build_sem_seg_head,
)
from .poolers import ROIPooler
from .postprocessing import detector_postprocess, sem_seg_postprocess
from .sampling import subsample_labels
from .proposal_generator import (
    PROPOSAL_GENERATOR_REGISTRY,
    RPN_HEAD_REGISTRY,
    RPN,
    StandardRPNHead,
    build_proposal_generator,
    build_rpn_head,
)
from .roi_heads import (
    ROI_BOX_HEAD_REGISTRY,
    ROI_HEADS_REGISTRY,
    ROI_KEYPOINT_HEAD_REGISTRY,
    ROI_MASK_HEAD_REGISTRY,
    ROIHeads,
    StandardROIHeads,
    Res5ROIHeads,
    CascadeROIHeads,
    RROIHeads,
    BaseMaskRCNNHead,
    MaskRCNNConvUpsampleHead,
    BaseKeypointRCNNHead,
    KRCNNConvDeconvUpsampleHead,
    FastRCNNOutputLayers,
    FastRCNNConvFCHead,
    build_box_head,
    build_keypoint_head,
    build_mask_head,
    build_roi_heads,
    select_foreground_proposals,
)
from .test_time_augmentation import DatasetMapperTTA, GeneralizedRCNNWithTTA
from .mmdet_wrapper import MMDetBackbone, MMDetDetector

_EXCLUDE = {"ShapeSpec"}
__all__ = [k for k in globals().keys() if k not in _EXCLUDE and not k.startswith("_")]

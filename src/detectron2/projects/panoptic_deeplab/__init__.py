"""Panoptic-DeepLab. Importing the package registers its meta-architecture and heads."""
from .config import add_panoptic_deeplab_config
from .dataset_mapper import PanopticDeeplabDatasetMapper
from .panoptic_seg import (
    INS_EMBED_BRANCHES_REGISTRY,
    PanopticDeepLab,
    PanopticDeepLabInsEmbedHead,
    PanopticDeepLabSemSegHead,
    build_ins_embed_branch,
)
from .post_processing import get_panoptic_segmentation
from .target_generator import PanopticDeepLabTargetGenerator

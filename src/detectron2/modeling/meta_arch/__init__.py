"""Meta-architectures: whole models built from a backbone and heads."""
from .build import META_ARCH_REGISTRY, build_model  # noqa: F401
from .panoptic_fpn import PanopticFPN  # noqa: F401
from .rcnn import GeneralizedRCNN, ProposalNetwork  # noqa: F401
from .dense_detector import DenseDetector  # noqa: F401
from .retinanet import RetinaNet  # noqa: F401
from .fcos import FCOS  # noqa: F401
from .semantic_seg import SEM_SEG_HEADS_REGISTRY, SemanticSegmentor, build_sem_seg_head  # noqa: F401

__all__ = [k for k in globals().keys() if not k.startswith("_")]

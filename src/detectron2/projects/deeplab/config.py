"""Config keys of DeepLab (DeepLabV3 / DeepLabV3+ semantic segmentation)."""
from detectron2.config import CfgNode as CN

__all__ = ["add_deeplab_config"]


def add_deeplab_config(cfg: CN) -> None:
    """Add DeepLab's keys, with upstream's defaults, to ``cfg`` in place."""
    # Random crops are retried until no category covers more than this part of the crop.
    cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0
    # The "poly" schedule: lr * (1 - iter / max_iter) ** POWER, floored at CONSTANT_ENDING.
    cfg.SOLVER.POLY_LR_POWER = 0.9
    cfg.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0
    # "cross_entropy" or "hard_pixel_mining" (cross-entropy of the worst 20% pixels).
    cfg.MODEL.SEM_SEG_HEAD.LOSS_TYPE = "hard_pixel_mining"
    # DeepLabV3+ decoder: low-level features projected before fusion.
    cfg.MODEL.SEM_SEG_HEAD.PROJECT_FEATURES = ["res2"]
    cfg.MODEL.SEM_SEG_HEAD.PROJECT_CHANNELS = [48]
    cfg.MODEL.SEM_SEG_HEAD.ASPP_CHANNELS = 256
    cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = [6, 12, 18]
    cfg.MODEL.SEM_SEG_HEAD.ASPP_DROPOUT = 0.1
    cfg.MODEL.SEM_SEG_HEAD.USE_DEPTHWISE_SEPARABLE_CONV = False
    # Backbone: dilation of res4 and the multi-grid of res5's three blocks.
    cfg.MODEL.RESNETS.RES4_DILATION = 1
    cfg.MODEL.RESNETS.RES5_MULTI_GRID = [1, 2, 4]
    # "basic" (one 7x7 conv) or "deeplab" (three 3x3 convs).
    cfg.MODEL.RESNETS.STEM_TYPE = "deeplab"
